"""C sources of the AOT measurement harness and firmware main (templates, ``$id``)."""
