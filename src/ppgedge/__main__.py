from ppgedge.cli import main

main()
