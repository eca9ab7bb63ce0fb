"""A strict parser of Prometheus' text exposition format 0.0.4, for the tests.

Stricter than Prometheus itself on purpose: every family needs ``# HELP`` and
``# TYPE`` before its samples, a family's samples are contiguous, no sample
repeats, counters are non-negative, histograms have cumulative buckets ending
in ``le="+Inf"`` equal to ``_count`` and a ``_sum``.  Any violation raises
``ValueError`` naming the line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    name: str
    type: str = ""
    help: str | None = None
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)


@dataclass
class Exposition:
    families: dict[str, Family]

    def value(self, metric: str, /, **labels: str) -> float:
        """The one sample `metric` with exactly these labels (KeyError if absent)."""
        family = self.families[_family_of(metric, self.families)]
        return family.samples[(metric, tuple(sorted(labels.items())))]

    def get(self, metric: str, /, default: float = 0.0, **labels: str) -> float:
        try:
            return self.value(metric, **labels)
        except KeyError:
            return default

    def series(self, metric: str, /) -> dict[Labels, float]:
        family = self.families[_family_of(metric, self.families)]
        return {labels: v for (n, labels), v in family.samples.items() if n == metric}


def _family_of(sample: str, families: dict[str, Family]) -> str:
    if sample in families:
        return sample
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample.removesuffix(suffix)
        if base != sample and base in families and families[base].type == "histogram":
            return base
    raise KeyError(sample)


def _parse_value(text: str, where: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: bad value {text!r}") from None


def _parse_labels(text: str, where: str) -> tuple[Labels, str]:
    """Parse `{a="x",b="y"}` at the start of text; return labels and the rest."""
    assert text.startswith("{")
    i = 1
    labels: list[tuple[str, str]] = []
    while True:
        if text[i] == "}":
            i += 1
            break
        m = _LABEL.match(text, i)
        if not m:
            raise ValueError(f"{where}: bad label name at {text[i:]!r}")
        name = m.group()
        i = m.end()
        if text[i : i + 2] != '="':
            raise ValueError(f'{where}: expected =" after label {name}')
        i += 2
        value = []
        while True:
            if i >= len(text):
                raise ValueError(f"{where}: unterminated label value")
            c = text[i]
            if c == "\\":
                nxt = text[i + 1 : i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ValueError(f"{where}: bad escape \\{nxt}")
                value.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ValueError(f"{where}: raw newline in label value")
            else:
                value.append(c)
                i += 1
        if any(n == name for n, _ in labels):
            raise ValueError(f"{where}: label {name} repeated")
        labels.append((name, "".join(value)))
        if text[i] == ",":
            i += 1
        elif text[i] != "}":
            raise ValueError(f"{where}: expected , or }} after label {name}")
    return tuple(sorted(labels)), text[i:]


def parse(text: str) -> Exposition:
    if not text.endswith("\n"):
        raise ValueError("exposition must end with a newline")
    families: dict[str, Family] = {}
    done: set[str] = set()  # families whose sample group has ended
    current: str | None = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not _NAME.fullmatch(name):
                    raise ValueError(f"{where}: bad metric name {name!r}")
                fam = families.setdefault(name, Family(name))
                if fam.samples:
                    raise ValueError(f"{where}: {parts[1]} after samples of {name}")
                if parts[1] == "HELP":
                    if fam.help is not None:
                        raise ValueError(f"{where}: second HELP for {name}")
                    fam.help = parts[3] if len(parts) > 3 else ""
                else:
                    if fam.type:
                        raise ValueError(f"{where}: second TYPE for {name}")
                    if len(parts) != 4 or parts[3] not in _TYPES:
                        raise ValueError(f"{where}: bad TYPE line")
                    fam.type = parts[3]
            continue
        if not line.strip():
            raise ValueError(f"{where}: empty line")
        m = _NAME.match(line)
        if not m:
            raise ValueError(f"{where}: bad sample name")
        sample = m.group()
        rest = line[m.end() :]
        labels: Labels = ()
        if rest.startswith("{"):
            labels, rest = _parse_labels(rest, where)
        if not rest.startswith(" "):
            raise ValueError(f"{where}: expected a space before the value")
        fields = rest[1:].split(" ")
        if not 1 <= len(fields) <= 2:
            raise ValueError(f"{where}: expected value [timestamp]")
        value = _parse_value(fields[0], where)
        try:
            family_name = _family_of(sample, families)
        except KeyError:
            raise ValueError(f"{where}: sample {sample} has no HELP/TYPE") from None
        fam = families[family_name]
        if not fam.type or fam.help is None:
            raise ValueError(f"{where}: {family_name} has samples before HELP and TYPE")
        if family_name != current:
            if family_name in done:
                raise ValueError(f"{where}: samples of {family_name} are not contiguous")
            if current is not None:
                done.add(current)
            current = family_name
        key = (sample, labels)
        if key in fam.samples:
            raise ValueError(f"{where}: duplicate sample {sample}{dict(labels)}")
        if fam.type == "counter" and not value >= 0:
            raise ValueError(f"{where}: counter {sample} is {value}")
        fam.samples[key] = value
    for fam in families.values():
        if not fam.type:
            raise ValueError(f"{fam.name}: HELP without TYPE")
        if fam.type == "histogram":
            _check_histogram(fam)
    return Exposition(families)


def _check_histogram(fam: Family) -> None:
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for (sample, labels), value in fam.samples.items():
        if sample == fam.name + "_bucket":
            le = dict(labels).get("le")
            if le is None:
                raise ValueError(f"{fam.name}: bucket without le")
            rest = tuple(kv for kv in labels if kv[0] != "le")
            groups.setdefault(rest, []).append((_parse_value(le, fam.name), value))
        elif sample not in (fam.name + "_sum", fam.name + "_count"):
            raise ValueError(f"{fam.name}: unexpected sample {sample}")
    for labels, buckets in groups.items():
        buckets.sort()
        if buckets[-1][0] != math.inf:
            raise ValueError(f"{fam.name}{dict(labels)}: no +Inf bucket")
        counts = [c for _, c in buckets]
        if counts != sorted(counts):
            raise ValueError(f"{fam.name}{dict(labels)}: buckets are not cumulative")
        count = fam.samples.get((fam.name + "_count", labels))
        if count is None or count != counts[-1]:
            raise ValueError(f"{fam.name}{dict(labels)}: _count {count} != +Inf {counts[-1]}")
        if (fam.name + "_sum", labels) not in fam.samples:
            raise ValueError(f"{fam.name}{dict(labels)}: no _sum")
