"""Payload codec: every JSON value a user can send, to bytes and back, exactly.

Theory of operation
-------------------
Journal payloads (execution and task documents, history bodies, timer and
outbox bodies, definitions) are stored as msgpack: it is several times faster
than ``json`` in both directions and smaller on disk.  msgpack alone is not
exact for everything Python's ``json`` module can hand us, so three gaps are
closed here:

* **Integers outside [-2**63, 2**64-1]** (``json.loads`` returns arbitrary
  precision ints) are written as ext type ``EXT_BIG_INT``: two's-complement,
  big-endian, minimal length.  msgpack calls our ``default`` hook when an int
  overflows, so ordinary ints pay nothing.
* **Lone surrogates** (``json.loads('"\\ud800"')``) cannot be UTF-8 encoded;
  strings are packed with ``surrogatepass`` so they survive byte for byte.
* **Deep nesting.**  msgpack's C packer refuses more than 1,025 nested
  containers and its unpacker more than 1,024, while ``json`` allows about as
  deep as the recursion limit (and more if it is raised).  A value too deep
  for msgpack is re-encoded with every container at depth ``_SPLIT_DEPTH``
  replaced by an ``EXT_NESTED`` ext whose payload is that subtree, encoded the
  same way.  Splitting walks the value iteratively, so no depth can overflow
  the Python stack while encoding; decoding recurses once per
  ``_SPLIT_DEPTH`` levels (each costing one msgpack unpack context on the C
  stack), which was measured fine to 60,000 levels, sixty times what ``json``
  parses under the default recursion limit.  Because the packer accepts one level more than
  the unpacker, blobs big enough to hold that many containers are checked
  with ``Unpacker.skip()`` (no objects built, ~1/8 of the cost of packing).

Floats are always 64-bit (exact, including -0.0, NaN and infinities), ``True``
stays distinct from ``1`` and ``1`` from ``1.0``.  Tuples encode as lists; bytes
round trip as bytes (not JSON, but harmless).  A
value that is not JSON-shaped (a set, bytes, an object) raises
``PayloadNotJSON``, a ``BadInput``: it is the caller's bug, and it is caught
before anything reaches the journal.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Final

import msgpack

from edged.errors import BadInput

__all__ = [
    "EXT_BIG_INT",
    "EXT_NESTED",
    "EXT_SHARED_REF",
    "MissingSharedValue",
    "PayloadNotJSON",
    "SharedValues",
    "decode",
    "decode_many",
    "encode",
    "encode_many",
    "remember_shared",
]

EXT_BIG_INT: Final = 1
EXT_NESTED: Final = 2
# A value stored once elsewhere (the journal's meta table), named by the SHA-1 of
# its encoding; see `SharedValues.encode_ref`.
EXT_SHARED_REF: Final = 3

# Well under both msgpack limits, so a split value never trips them.
_SPLIT_DEPTH: Final = 512
# Fewer bytes than this cannot hold enough containers to trip the unpacker.
_DEPTH_CHECK_MIN_BYTES: Final = 1_024


class PayloadNotJSON(BadInput):
    """A payload holds something that is not a JSON value."""


class _Nested:
    """Marker for a subtree packed as its own EXT_NESTED blob (see `_split`)."""

    __slots__ = ("ext", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.ext: msgpack.ExtType | None = None


def _default(obj: object) -> Any:
    """What the packers (``strict_types``, see `_Packers`) do not take as it is.

    Exact JSON types never come here, but for ints past 64 bits; subclasses and
    tuples are handed back as the base type's value, which msgpack then packs to the
    bytes it wrote for them without ``strict_types`` (the codec tests check this).
    """
    if isinstance(obj, _Nested) and obj.ext is not None:
        return obj.ext
    if isinstance(obj, int) and not isinstance(obj, bool):
        value = int.__index__(obj)  # the value of an int subclass (an IntEnum member, say)
        if -(2**63) <= value < 2**64:
            return value
        size = (value.bit_length() + 8) // 8
        return msgpack.ExtType(EXT_BIG_INT, value.to_bytes(size, "big", signed=True))
    if isinstance(obj, float):
        return float.__float__(obj)
    if isinstance(obj, bytes | bytearray):
        return memoryview(obj)  # packed as bin, the same bytes
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, dict):
        return dict(obj.items())
    if isinstance(obj, msgpack.ExtType):
        return msgpack.ExtType(obj.code, obj.data)
    if isinstance(obj, list | tuple):
        return list(obj)
    raise PayloadNotJSON(f"not a JSON value: {type(obj).__name__}")


class MissingSharedValue(LookupError):
    """A payload references a shared value this process has not loaded (`remember_shared`)."""


# Encodings of shared values by the SHA-1 of their bytes.  Content-addressed, so one
# table serves every journal of the process: the same digest is the same value.
_SHARED_BODIES: dict[bytes, bytes] = {}


def remember_shared(digest: bytes, body: bytes) -> None:
    """Make `body` (an `encode` result whose SHA-1 is `digest`) decodable by reference."""
    _SHARED_BODIES[bytes(digest)] = bytes(body)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_BIG_INT:
        return int.from_bytes(data, "big", signed=True)
    if code == EXT_NESTED:
        return decode(data)
    if code == EXT_SHARED_REF:
        body = _SHARED_BODIES.get(data)
        if body is None:
            raise MissingSharedValue(data.hex())
        return decode(body)  # a fresh copy per reference, as an inline value would be
    raise ValueError(f"unknown journal payload ext type {code}")


# Packers per thread, reused: `msgpack.packb` builds (and mallocs a buffer for)
# a new Packer per call, a third of the cost of packing a small document.  A
# Packer resets its buffer when `pack` raises, so reuse after an error is safe.
# Two of them: with ``unicode_errors`` set, msgpack encodes every string through
# Python's codec machinery (~35% slower overall); only a lone surrogate needs
# that, so the strict packer goes first and the lenient one retries its
# failures.  Both write identical UTF-8 for every other string.
#
# ``strict_types``: the packer tests each value for the exact types only, where it
# otherwise asks "a subclass of float? of bytearray?" (a walk of the type's MRO) before
# it gets to str, dict or list: a small history body packs in 2.4k instructions instead
# of 4.3k.  Subclasses and tuples, which it then leaves to `_default`, come out as before.
class _Packers(threading.local):
    """Each thread's pair, made on its first use (`threading.local` runs __init__ per thread)."""

    def __init__(self) -> None:
        self.strict = msgpack.Packer(default=_default, strict_types=True)
        self.lenient = msgpack.Packer(
            default=_default, unicode_errors="surrogatepass", strict_types=True
        )


_packers = _Packers()


def _pack(value: Any) -> bytes:
    packers = _packers
    try:
        try:
            blob: bytes = packers.strict.pack(value)
        except UnicodeEncodeError:
            blob = packers.lenient.pack(value)
    except TypeError as exc:
        # msgpack raises TypeError for non-str dict keys and the like.
        raise PayloadNotJSON(f"not a JSON value: {exc}") from exc
    return blob


def _fits_unpacker(blob: bytes) -> bool:
    if len(blob) < _DEPTH_CHECK_MIN_BYTES:
        return True
    unpacker = msgpack.Unpacker()
    unpacker.feed(blob)
    try:
        unpacker.skip()
    except msgpack.StackError:
        return False
    return True


def _split(value: Any) -> Any:
    """Copy `value`, cutting it every _SPLIT_DEPTH levels into EXT_NESTED blobs.

    Iterative on purpose: the value may be deeper than the Python stack.  The
    cut subtrees are packed deepest first, so each `packb` call sees at most
    _SPLIT_DEPTH levels and finds its inner cuts already packed; nesting the
    packb calls instead would stack 512 C frames per cut and overflow the C
    stack on very deep values.
    """

    def shallow(node: Any) -> Any:
        if isinstance(node, dict):
            return dict(node)
        if isinstance(node, list | tuple):
            return list(node)
        return node

    root = shallow(value)
    if not isinstance(root, dict | list):
        return root
    cuts: list[_Nested] = []
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        keys = node.keys() if isinstance(node, dict) else range(len(node))
        for key in list(keys):
            child = node[key]
            if not isinstance(child, dict | list | tuple):
                continue
            copy = shallow(child)
            if (depth + 1) % _SPLIT_DEPTH == 0:
                cut = _Nested(copy)
                cuts.append(cut)
                node[key] = cut
            else:
                node[key] = copy
            stack.append((copy, depth + 1))
    # Depth-first discovery order puts every cut after the cuts above it.
    for cut in reversed(cuts):
        cut.ext = msgpack.ExtType(EXT_NESTED, _pack(cut.value))
    return root


def encode(value: Any, *, opaque_bytes: int = 0) -> bytes:
    """Encode a JSON value (as ``json.loads`` returns it) to bytes.

    `opaque_bytes`: how many bytes of the result are already-encoded
    ``EXT_NESTED`` payloads (see `SharedValues`); the unpacker decodes those
    in their own context, so they cannot add depth and do not count toward
    the size that calls for a depth check.
    """
    try:
        blob = _pack(value)
    except ValueError:
        # msgpack's packer nesting limit ("recursion limit exceeded").
        return _pack(_split(value))
    return _unpackable(blob, value, opaque_bytes)


def _unpackable(blob: bytes, value: Any, opaque_bytes: int = 0) -> bytes:
    """`blob` (`value` packed), or `value` packed again with its deep parts split off when
    the unpacker could not read `blob` back (too many nested containers)."""
    if len(blob) - opaque_bytes < _DEPTH_CHECK_MIN_BYTES or _fits_unpacker(blob):
        return blob
    return _pack(_split(value))


def encode_many(values: list[Any]) -> list[bytes]:
    """`encode` each of `values`: the same bytes, in one call for all of them.

    A journal batch holds ~10 payloads per echoed MQTT message; calling the packer
    directly from one comprehension instead of through `encode` and `_pack` per value
    saves ~1.4k of the ~7k instructions a small history body cost.  Anything out of the
    ordinary (a lone surrogate, a value that is not JSON, nesting too deep for msgpack)
    makes the whole list go through `encode`, which settles each case as it always has.
    """
    pack = _packers.strict.pack
    try:
        blobs: list[bytes] = [pack(value) for value in values]
    except Exception:  # the packer resets itself on errors: `encode` starts clean
        return [encode(value) for value in values]
    if blobs and max(map(len, blobs)) >= _DEPTH_CHECK_MIN_BYTES:
        # Big enough to hold too many containers for the unpacker: check as `encode` does.
        return list(map(_unpackable, blobs, values))
    return blobs


def decode(blob: bytes) -> Any:
    """Decode bytes made by `encode` back to the identical JSON value."""
    return msgpack.unpackb(
        blob,
        ext_hook=_ext_hook,
        unicode_errors="surrogatepass",
        # Non-str keys are not JSON, but if a caller stored one it must still
        # read back rather than make the row unreadable.
        strict_map_key=False,
        raw=False,
    )


def decode_many(blobs: list[bytes]) -> list[Any]:
    """Decode many blobs at once: one streaming unpacker instead of a call per blob.

    Recovery decodes ~100,000 task documents; this saves the per-call set-up.
    """
    if not blobs:
        return []
    joined = b"".join(blobs)
    unpacker = msgpack.Unpacker(
        ext_hook=_ext_hook,
        unicode_errors="surrogatepass",
        strict_map_key=False,
        raw=False,
        max_buffer_size=max(len(joined), 1),
    )
    unpacker.feed(joined)
    values = list(unpacker)
    if len(values) != len(blobs):
        raise ValueError(f"decode_many: {len(blobs)} blobs gave {len(values)} values")
    return values


class _SharedEntry:
    """One value `SharedValues.encode_ref` has seen: inline until a second owner holds it."""

    __slots__ = ("body", "digest", "inline", "owner", "ref", "value")

    def __init__(self, value: Any, inline: msgpack.ExtType, owner: str) -> None:
        self.value = value  # held, so that its id is not reused while cached
        self.inline = inline  # EXT_NESTED with the packed value
        self.body: bytes = inline.data
        self.owner: str | None = owner  # None once shared
        self.digest = b""
        self.ref: msgpack.ExtType | None = None

    def share(self) -> None:
        self.digest = hashlib.sha1(self.body).digest()
        remember_shared(self.digest, self.body)
        self.ref = msgpack.ExtType(EXT_SHARED_REF, self.digest)
        self.owner = None


def _pack_unless_too_deep(spliced: dict[str, Any], opaque: int) -> bytes | None:
    """`spliced` packed, or None when it nests too deep for msgpack's packer or unpacker.

    `opaque` bytes of the blob are already-packed exts (no containers for the
    unpacker to count), so they do not count towards the size that needs the check.
    """
    try:
        blob = _pack(spliced)
    except ValueError:
        return None
    if len(blob) - opaque >= _DEPTH_CHECK_MIN_BYTES and not _fits_unpacker(blob):
        return None
    return blob


class SharedValues:
    """Encodings of big values that many payloads repeat, made once and reused.

    Every transition rewrites its execution's snapshot, and every snapshot
    carries the pinned workflow definition, unchanged, which is most of its
    bytes: packing it each time was ~20 µs of a ~300 µs task completion.
    `encode(doc, key)` packs ``doc[key]`` once as an ``EXT_NESTED`` ext (the
    codec's own nesting marker, so `decode` needs no change and returns the
    identical value) and splices that ext into every later encoding of a doc
    holding the same object.

    Keyed by identity, so each cached value is held (its id cannot be reused
    while cached) and must not be mutated after its first encoding (pinned
    definitions never are).  An LRU of `max_entries`: a miss just costs the
    ordinary encoding.  Used from the Trio thread only.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._cache: OrderedDict[int, tuple[Any, _Nested]] = OrderedDict()
        # id -> (value, reference ext, digest, body); the value is held so its id stays unique
        self._refs: dict[int, _SharedEntry] = {}

    def encode_ref(
        self, doc: dict[str, Any], keys: tuple[str, ...], refs: dict[bytes, bytes], owner: str
    ) -> bytes:
        """Encode `doc` with each shared ``doc[key]`` replaced by a reference to its encoding.

        A value becomes shared once documents of two different `owner` s (two
        executions: the caller passes the workflow id for task documents too) held it;
        until then it is spliced in inline as `encode` does, so values that
        belong to one execution only (a dynamic fork's nodes, an inline
        definition) never leave rows behind when that execution is pruned.
        Adds the ``digest: body`` of each reference to `refs`: the caller
        stores every `body` under its `digest` (durably, with the blob) so that
        `decode` can follow the reference later, in any process, once
        `remember_shared` has seen it.  An execution snapshot shrinks from
        ~1.7 KB to ~160 bytes this way (its definition is written once instead
        of on every transition), a task document from ~570 to ~190 (its
        definition node and TaskDef).  A document too deep to pack directly is
        encoded inline (`encode`).
        """
        spliced: dict[str, Any] | None = None
        cache = self._refs
        added: list[bytes] = []
        opaque = 0
        for key in keys:
            value = doc.get(key)
            if type(value) is not dict or not value:
                continue
            entry = cache.get(id(value))
            if entry is None or entry.value is not value:
                entry = self._new_ref(value, owner)
            elif entry.owner is not None and entry.owner != owner:
                entry.share()
            if spliced is None:
                spliced = dict(doc)
            if entry.owner is None:  # shared
                spliced[key] = entry.ref
                if entry.digest not in refs:
                    refs[entry.digest] = entry.body
                    added.append(entry.digest)
            else:
                spliced[key] = entry.inline
                opaque += len(entry.body)
        if spliced is None:
            return encode(doc)
        blob = _pack_unless_too_deep(spliced, opaque)
        if blob is None:
            for digest in added:  # nothing references them after all
                del refs[digest]
            return self.encode(doc, *keys)  # split, inline
        return blob

    def _new_ref(self, value: dict[str, Any], owner: str) -> _SharedEntry:
        nested = self._nested(value)
        assert nested.ext is not None
        entry = _SharedEntry(value, nested.ext, owner)
        if len(self._refs) >= self.max_entries:
            self._refs.clear()  # a miss only costs packing the value again
        self._refs[id(value)] = entry
        return entry

    def encode(self, doc: dict[str, Any], *keys: str) -> bytes:
        """Encode `doc`, splicing in the cached encodings of ``doc[key]`` for each key."""
        spliced: dict[str, Any] | None = None
        opaque = 0
        for key in keys:
            value = doc.get(key)
            if not isinstance(value, dict) or not value:
                continue
            ext = self._nested(value).ext
            assert ext is not None
            if spliced is None:
                spliced = dict(doc)
            # The ExtType itself, not the _Nested marker: msgpack packs an ExtType
            # without calling back into `_default` (one Python call per key saved).
            spliced[key] = ext
            opaque += len(ext.data)
        if spliced is None:
            return encode(doc)
        blob = _pack_unless_too_deep(spliced, opaque)
        if blob is not None:
            return blob
        # too deep for msgpack: split
        # `_split` copies tuples (an ExtType is one) as lists: give it the _Nested markers.
        for key in keys:
            if isinstance(spliced.get(key), msgpack.ExtType):
                spliced[key] = self._nested(doc[key])
        return _pack(_split(spliced))

    def _nested(self, value: dict[str, Any]) -> _Nested:
        found = self._cache.get(id(value))
        if found is None or found[0] is not value:
            nested = _Nested(value)
            nested.ext = msgpack.ExtType(EXT_NESTED, encode(value))
            found = (value, nested)
            self._cache[id(value)] = found
            if len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(id(value))
        return found[1]
