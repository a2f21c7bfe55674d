"""Channel names, Table 1's six input combinations, and the one check of a channel list.

Every image channel has a short name: ``fl`` (whole-cell fluorescence, anti-pY-like),
``bf`` (bright-field) and ``nuc`` (nucleus / DAPI). Table 1 of the paper names the
combinations the network sees ``FL``, ``FL+Nuc``, ``BF``, ... (:func:`combo_name`). Every
place that takes channels from a user — a :class:`~cellcutter_nb.data.field.Field`, the
patches, the command line, the explorer, the experiments, the notebook parameters —
checks them with :func:`check`.

Examples
--------
>>> from cellcutter_nb import channels
>>> channels.check("fl,nuc"), channels.check("BF+Nuc"), channels.combo_name(("fl", "bf"))
(('fl', 'nuc'), ('bf', 'nuc'), 'FL+BF')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: Channel names understood everywhere in the package, in canonical order.
CHANNELS: tuple[str, ...] = ("fl", "bf", "nuc")
#: Table 1's name of each channel.
NAMES: dict[str, str] = {"fl": "FL", "bf": "BF", "nuc": "Nuc"}
#: Table 1's six input combinations, in the paper's column order.
COMBINATIONS: tuple[tuple[str, ...], ...] = (
    ("fl",), ("fl", "nuc"), ("bf",), ("bf", "nuc"), ("fl", "bf"), ("fl", "bf", "nuc"))


def combo_name(channels: Sequence[str]) -> str:
    """Table 1's name of a channel set, e.g. ``("fl", "nuc")`` → ``"FL+Nuc"``.

    Examples
    --------
    >>> [combo_name(c) for c in COMBINATIONS]
    ['FL', 'FL+Nuc', 'BF', 'BF+Nuc', 'FL+BF', 'FL+BF+Nuc']
    """
    return "+".join(NAMES[c] for c in channels)


def parse(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Channel names from a sequence, a comma list ``"fl, nuc"`` or a Table 1 name
    ``"FL+Nuc"`` (any case); not checked (see :func:`check`).

    Examples
    --------
    >>> parse("fl, nuc"), parse("fl+bf+nuc"), parse(["bf"]), parse("")
    (('fl', 'nuc'), ('fl', 'bf', 'nuc'), ('bf',), ())
    """
    if not isinstance(spec, str):
        return tuple(spec)
    table1 = {combo_name(c).lower(): c for c in COMBINATIONS}
    return table1.get(spec.strip().lower()) or tuple(
        c.strip() for c in spec.split(",") if c.strip())


def check(spec: str | Sequence[str], available: Iterable[str] | None = None, *,
          hint: str = "", cell_channel: bool = False, canonical: bool = False,
          ) -> tuple[str, ...]:
    """The channel names of ``spec`` (see :func:`parse`), checked.

    Parameters
    ----------
    spec : str or sequence of str
        Names, ``"fl,nuc"`` or a Table 1 name.
    available : iterable of str, optional
        The channels that exist (a field's); every name must be one of them.
    hint : str
        Appended to the messages, e.g. how to pass channels on the command line.
    cell_channel : bool
        Also refuse ``nuc`` alone (it shows no cell borders).
    canonical : bool
        Return the names in :data:`CHANNELS` order instead of as given.

    Raises
    ------
    ValueError
        No channel, a name not available (or unknown), a repeated name, or (with
        ``cell_channel``) the nucleus channel alone.

    Examples
    --------
    >>> check(("nuc", "fl"), canonical=True)
    ('fl', 'nuc')
    >>> check(["fl", "bf"], available=("fl", "nuc"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Channel(s) ['bf'] are not in this field (it has ['fl', 'nuc']): no such image ...
    """
    names = parse(spec)
    if not names:
        raise ValueError(f"No channel selected: choose at least one of {list(CHANNELS)}{hint}.")
    unknown = [c for c in names if c not in CHANNELS]
    have = None if available is None else list(available)
    missing = [] if have is None else [c for c in names if c not in have]
    if unknown or missing:
        problems = [f"unknown channel name(s) {unknown}: use {list(CHANNELS)} or a Table 1 "
                    f"name {[combo_name(c) for c in COMBINATIONS]}"] if unknown else []
        problems += [f"channel(s) {missing} are not in this field (it has {have}): no such "
                     f"image was given"] if missing else []
        text = "; ".join(problems)
        raise ValueError(f"{text[0].upper()}{text[1:]}{hint}.")
    if len(set(names)) != len(names):
        raise ValueError(f"Channels {list(names)} repeat a name; list each channel once.")
    if cell_channel and set(names) == {"nuc"}:
        raise ValueError("The nucleus channel alone shows no cell borders: add fl or bf "
                         f"(Table 1's combinations are {[combo_name(c) for c in COMBINATIONS]}).")
    return tuple(c for c in CHANNELS if c in names) if canonical else names


def check_combinations(combinations: Iterable[str | Sequence[str]]) -> list[tuple[str, ...]]:
    """Channel combinations of an experiment, each checked (at least one combination).

    Examples
    --------
    >>> check_combinations(["FL", ("bf", "nuc")])
    [('fl',), ('bf', 'nuc')]
    >>> check_combinations([("dapi",)])
    Traceback (most recent call last):
    ...
    ValueError: combinations must be non-empty channel tuples from fl, bf, nuc; got [('dapi',)].
    """
    combos = [parse(c) for c in combinations]
    try:
        if not combos:
            raise ValueError("no combination")
        return [check(c) for c in combos]
    except ValueError:
        raise ValueError(f"combinations must be non-empty channel tuples from "
                         f"{', '.join(CHANNELS)}; got {combos}.") from None
