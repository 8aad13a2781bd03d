"""The weights fusekit ships for ReFusion, declared as data.

``weights/registry.json`` (inside this package) lists one entry per trained
task. Until an entry exists for a task, asking for ``refusion`` on that task
raises :class:`~fusekit.errors.WeightsError`: fusekit never runs the network
with random weights.

Registry format
---------------
::

    {
      "format": 1,
      "weights": [
        {
          "task": "ivif",                              # one of fusekit.TASKS
          "file": "refusion_ivif.safetensors",         # relative to weights/
          "sha256": "<64 hex digits of the file>",
          "card": {                                    # free-form training card
            "trained_with": "fusekit train ...",      # exact command
            "data": "ivif/msrs/train + ivif/roadscene/train",
            "epochs": 10, "date": "2026-11-27",
            "metrics": {"en": 6.8, "ssim": 0.71}       # on the test split, say which
          }
        }
      ]
    }

Fields: ``task`` (str, required), ``file`` (str, required, a
safetensors file beside the registry), ``sha256`` (str, required, checked
before loading), ``card`` (dict, required, shown to users; say how the
weights were trained and how they score). Optional: ``variant`` (str, the
name users pass as ``--weights NAME``; default ``"fixed"`` when the card's
``loss_proposer`` is ``"fixed"``, else ``"learned"``; unique per task),
``default`` (bool: the variant used when none is named; a task with one
entry uses it), ``proposer`` and ``proposer_sha256`` (the loss proposer's
weights of a meta-learned variant, read by ``fusekit explain``). The safetensors file holds the
state dict of :class:`~fusekit_refusion.network.ReFusionNet` under its own
names (``safetensors.torch.save_file(net.state_dict(), path)``); the
authors' key layout is accepted too.

Examples
--------
>>> from fusekit_refusion.weights import installed_tasks
>>> isinstance(installed_tasks(), list)
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fusekit.errors import WeightsError
from fusekit.hashing import file_sha256
from fusekit.interfaces import TASKS

__all__ = ["WEIGHTS_DIR", "REGISTRY", "WeightsEntry", "read_registry", "entry_for", "installed_tasks",
           "sha256_of", "variants_for", "is_variant_name"]

#: Folder of the shipped weights and their registry.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: The registry file.
REGISTRY = WEIGHTS_DIR / "registry.json"


@dataclass(frozen=True)
class WeightsEntry:
    """One shipped weights file.

    Attributes
    ----------
    task : str
        Fusion task (``ivif``, ``mif``, ``mfif``, ``meif``).
    path : Path
        Absolute path of the safetensors file.
    sha256 : str
        Expected SHA-256 of the file, lowercase hex.
    card : dict
        Training card: how the weights were made and how they score.
    variant : str
        Name of this variant (``"fixed"``, ``"learned"``, ...).
    default : bool
        Whether it is the task's default.
    proposer : Path or None
        The meta-learned loss proposer's weights, where shipped.
    proposer_sha256 : str or None
        Expected SHA-256 of ``proposer``.
    """

    task: str
    path: Path
    sha256: str
    card: dict = field(default_factory=dict)
    variant: str = "fixed"
    default: bool = False
    proposer: Path | None = None
    proposer_sha256: str | None = None


#: SHA-256 of a file, lowercase hex: fusekit's one helper (:func:`fusekit.hashing.file_sha256`),
#: under the name this plugin's registry code and scripts use.
sha256_of = file_sha256


def read_registry(registry: Path | None = None) -> list[WeightsEntry]:
    """Parse and validate the registry (default: :data:`REGISTRY`); raise WeightsError naming the problem."""
    registry = Path(registry) if registry is not None else REGISTRY
    try:
        data = json.loads(Path(registry).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{registry}: unreadable weights registry ({exc}); reinstall fusekit") from exc
    items = data.get("weights") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(items, list):
        raise WeightsError(f"{registry}: expected {{'format': 1, 'weights': [...]}}; reinstall fusekit")
    entries: list[WeightsEntry] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not {"task", "file", "sha256", "card"} <= set(item):
            raise WeightsError(f"{registry}: entry {i} needs task, file, sha256 and card; fix the registry")
        if item["task"] not in TASKS:
            raise WeightsError(f"{registry}: entry {i} has task {item['task']!r}, expected one of {', '.join(TASKS)}")
        if not isinstance(item["card"], dict):
            raise WeightsError(f"{registry}: entry {i} card must be a JSON object")
        variant = str(item.get("variant") or ("fixed" if item["card"].get("loss_proposer") == "fixed"
                                              else "learned"))
        if not is_variant_name(variant):
            raise WeightsError(f"{registry}: entry {i} variant {variant!r} must be a plain word such as 'learned'")
        if any(e.task == item["task"] and e.variant == variant for e in entries):
            raise WeightsError(f"{registry}: two {variant!r} entries for task {item['task']!r}; keep one")
        proposer = item.get("proposer")
        entries.append(WeightsEntry(task=item["task"], path=Path(registry).parent / item["file"],
                                    sha256=str(item["sha256"]).lower(), card=item["card"], variant=variant,
                                    default=bool(item.get("default", False)),
                                    proposer=Path(registry).parent / proposer if proposer else None,
                                    proposer_sha256=str(item.get("proposer_sha256", "")).lower() or None))
    for task in {e.task for e in entries}:
        if sum(e.default for e in entries if e.task == task) > 1:
            raise WeightsError(f"{registry}: task {task!r} has more than one default variant; keep one")
    return entries


def is_variant_name(text: str) -> bool:
    """Whether ``text`` names a weights variant rather than a file: a plain lowercase word
    (letters, digits, ``-``, ``_``), no path separator, no suffix."""
    return bool(text) and text[0].isalpha() and all(c.isalnum() or c in "-_" for c in text) and text.lower() == text


def variants_for(task: str, registry: Path | None = None) -> list[WeightsEntry]:
    """The shipped variants of ``task``, the default first."""
    entries = [e for e in read_registry(registry) if e.task == task]
    return sorted(entries, key=lambda e: (not _is_default(e, entries), e.variant))


def _is_default(entry: WeightsEntry, same_task: list[WeightsEntry]) -> bool:
    return entry.default or (len(same_task) == 1) or (
        not any(e.default for e in same_task) and entry.variant == "fixed")


def installed_tasks(registry: Path | None = None) -> list[str]:
    """Tasks for which trained weights ship with fusekit."""
    return [e.task for e in read_registry(registry)]


def entry_for(task: str, registry: Path | None = None, *, verify: bool = True,
              variant: str | None = None) -> WeightsEntry:
    """The shipped weights of ``task`` (its default variant, or ``variant``), with the file
    present and its sha256 checked.

    Raises
    ------
    WeightsError
        No weights for the task, no such variant, the file is missing, or
        its checksum differs.
    """
    entries = variants_for(task, registry)
    if not entries:
        raise WeightsError(
            f"no trained weights installed for task {task}; pass --weights FILE "
            f"(a .pth from the authors or a .safetensors trained with fusekit train)")
    if variant is None:
        entry = entries[0]
    else:
        found = [e for e in entries if e.variant == variant]
        if not found:
            names = ", ".join(e.variant + (" (default)" if i == 0 else "") for i, e in enumerate(entries))
            raise WeightsError(f"no weights variant {variant!r} for task {task}; shipped variants: {names}; "
                               f"or pass --weights FILE")
        entry = found[0]
    if not entry.path.is_file():
        raise WeightsError(f"{entry.path}: shipped weights for task {task} are missing; reinstall fusekit "
                           f"or pass --weights FILE")
    if verify:
        actual = sha256_of(entry.path)
        if actual != entry.sha256:
            raise WeightsError(f"{entry.path}: sha256 {actual[:12]}... does not match the registry "
                               f"({entry.sha256[:12]}...); the file is damaged, reinstall fusekit")
    return entry
