"""Pruned or rebuilt: the pruned architecture trained afresh with the teacher, the better of
the two kept on validation, both scores and both files kept, the story in the checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from ppgedge.compress.prune import prune
from ppgedge.compress.rebuild import keep_better_rebuilt, rebuilt_path, reinitialise
from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout
from ppgedge.models.checkpoint import load_checkpoint


def test_rebuilt_and_pruned_compared_on_validation(
    tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    out = tmp_path / "pruned.pt"
    prune(
        tiny_checkpoint, tiny_dataset, split, out, "60%", steps=1, finetune_epochs=0,
        final_epochs=1, teacher=tiny_checkpoint, cache_dir=tmp_path / "cache", device="cpu",
    )  # fmt: skip
    pruned = load_checkpoint(out)
    kept = keep_better_rebuilt(
        out, tiny_checkpoint, tiny_checkpoint, tiny_dataset, split, epochs=2, patience=2,
        cache_dir=tmp_path / "cache", device="cpu", seed=3,
    )  # fmt: skip
    choice = kept.metrics["choice"]
    assert set(choice["val_mae"]) == {"pruned", "rebuilt"}
    assert choice["val_mae"]["pruned"] == float(pruned.metrics["val_mae"])
    best = min(choice["val_mae"], key=choice["val_mae"].get)
    assert choice["kept"] == best and choice["chosen_on"] == "validation subjects"
    other = load_checkpoint(rebuilt_path(out))
    assert choice["files"] == {
        best: out.name,
        ({"pruned", "rebuilt"} - {best}).pop(): other.path.name,
    }
    rebuilt = kept if best == "rebuilt" else other
    # the same architecture as the pruned one, its own weights, its story
    assert rebuilt.layer_shapes == pruned.layer_shapes
    assert rebuilt.lineage[-1]["stage"] == "rebuild" and "seed 3" in rebuilt.lineage[-1]["init"]
    assert rebuilt.lineage[-2]["stage"] == "prune"
    assert rebuilt.parent["arch"] == pruned.arch and rebuilt.parent["path"] == str(out)
    assert float(rebuilt.metrics["val_mae"]) == choice["val_mae"]["rebuilt"]
    assert rebuilt.training["config"]["epochs"] == 2
    x = torch.randn(2, len(pruned.data_format.channels), pruned.data_format.window_samples)
    with torch.no_grad():
        assert rebuilt.build()(x).shape == pruned.build()(x).shape


def test_reinitialise_keeps_shapes_and_draws_new_seeded_weights(tiny_checkpoint: Path) -> None:
    ck = load_checkpoint(tiny_checkpoint)
    a, b, c = ck.build(), reinitialise(ck.build(), 1), reinitialise(ck.build(), 1)
    for (name, w0), w1, w2 in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True
    ):
        assert w0.shape == w1.shape and torch.equal(w1, w2), name
    conv = [k for k, v in a.state_dict().items() if v.ndim == 4][0]
    assert not torch.equal(a.state_dict()[conv], b.state_dict()[conv])


def test_prune_cli_rebuild_keeps_the_better_and_says_so(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """``ppgedge prune --rebuild`` is the chain's ``[prune] rebuild``: both candidates are
    trained, the choice is in the JSON and the other one stays beside the output; without a
    teacher it is a one-line usage error before any work."""
    import json

    from cli_helpers import assert_user_error, ppgedge

    out = tmp_path / "p.pt"
    fast = ("--steps", "1", "--finetune-epochs", "0", "--final-epochs", "1")
    assert_user_error(ppgedge("prune", tiny_checkpoint, "--to", "60%", "--rebuild", "-o", out),
                      "--teacher")  # fmt: skip
    assert not out.exists()
    # a file of the user's where the other candidate would go: refused before any work
    theirs = rebuilt_path(out)
    theirs.write_text("my notes")
    assert_user_error(ppgedge("prune", tiny_checkpoint, "--to", "60%", "--teacher", tiny_checkpoint,
                              "--rebuild", "-o", out), str(theirs))  # fmt: skip
    assert theirs.read_text() == "my notes" and not out.exists()
    theirs.unlink()
    proc = ppgedge("prune", tiny_checkpoint, "--to", "60%", *fast, "--teacher", tiny_checkpoint,
                   "--rebuild", "--device", "cpu", "-o", out, "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    choice = json.loads(proc.stdout)["choice"]
    assert choice["kept"] == min(choice["val_mae"], key=choice["val_mae"].get)
    assert load_checkpoint(out).metrics["choice"] == choice
    assert rebuilt_path(out).is_file()
