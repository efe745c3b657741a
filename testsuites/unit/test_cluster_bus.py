"""The cluster's event bus: signed JSON frames that name what is wrong with a bad one, and the
per-sender replay guard (boot id + sequence number)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.cluster import bus
from emulators.cluster.bus import (EVENT_TYPES, MAX_FRAME, TRIGGER_TYPES, VERSION, BusError, Message, ReplayGuard,
                                   Sequencer, decode, encode)

pytestmark = pytest.mark.unit

SECRET = b"cluster-secret-0123456789abcdef"


def msg(type: str = "heartbeat", sender: str = "ne1", boot: float = 1000.5, seq: int = 7, **body) -> Message:
    return Message(type, sender, boot, seq, 1234.25, body or {"digest": "abc"})


def signed(body: dict, secret: bytes = SECRET) -> bytes:
    """A frame whose signature is valid for whatever body (well-formed or not) it carries."""
    import hashlib
    import hmac
    mac = hmac.new(secret, bus._canon(body), hashlib.sha256).hexdigest()
    return json.dumps({"m": body, "h": mac}).encode()


def reason_of(frame: bytes, secret: bytes = SECRET, allowed=EVENT_TYPES) -> BusError:
    with pytest.raises(BusError) as exc:
        decode(frame, secret, allowed)
    return exc.value


# ------------------------------------------------------------------ round trip and signatures
def test_round_trip_keeps_every_field():
    m = msg("config-changed", context=["interface eth1"], line=" ip address 10.0.0.1 255.255.255.0", digest="d1")
    back = decode(encode(m, SECRET), SECRET)
    assert back == m
    assert back.body["context"] == ["interface eth1"]


def test_trigger_types_decode_only_on_the_trigger_channel():
    frame = encode(msg("clone", failover=3, role="ne1"), SECRET)
    assert decode(frame, SECRET, TRIGGER_TYPES).type == "clone"
    err = reason_of(frame)          # the events channel does not take orders
    assert err.reason == "unknown-type" and "'clone'" in err.detail


def test_tampered_body_is_a_bad_signature():
    outer = json.loads(encode(msg(seq=7), SECRET))
    outer["m"]["seq"] = 8
    err = reason_of(json.dumps(outer).encode())
    assert err.reason == "bad-signature"
    assert str(err).startswith("bad-signature:")


def test_tampered_nested_body_is_a_bad_signature():
    outer = json.loads(encode(msg("failing", reason="disk"), SECRET))
    outer["m"]["body"]["reason"] = "none"
    assert reason_of(json.dumps(outer).encode()).reason == "bad-signature"


def test_wrong_secret_is_a_bad_signature():
    frame = encode(msg(), b"another-clusters-secret")
    assert reason_of(frame).reason == "bad-signature"


def test_key_order_does_not_matter_to_the_signature():
    """The HMAC is over the canonical form, so a peer that serialises keys differently still verifies."""
    m = msg()
    outer = json.loads(encode(m, SECRET))
    reordered = {"h": outer["h"], "m": dict(reversed(list(outer["m"].items())))}
    assert decode(json.dumps(reordered, indent=2).encode(), SECRET) == m


# ------------------------------------------------------------------ malformed frames
@pytest.mark.parametrize("frame", [b"not json at all", b"\xff\xfe\x00garbage", b"{\"m\": ", b""])
def test_non_json_is_malformed(frame):
    err = reason_of(frame)
    assert err.reason == "malformed" and "not JSON" in err.detail


@pytest.mark.parametrize("frame", [b"[1, 2]", b"42", b'{"m": {}}', b'{"h": "x"}', b'{"m": [], "h": "x"}',
                                   b'{"m": {}, "h": 5}'])
def test_wrong_envelope_is_malformed(frame):
    err = reason_of(frame)
    assert err.reason == "malformed" and '"m"' in err.detail and '"h"' in err.detail


def test_oversized_frame_is_malformed_before_parsing():
    frame = b" " * (MAX_FRAME + 1)
    err = reason_of(frame)
    assert err.reason == "malformed" and str(MAX_FRAME) in err.detail and "exceeds" in err.detail


@pytest.mark.parametrize("field", ["v", "type", "sender", "boot", "seq", "time", "body"])
def test_missing_field_is_malformed_and_named(field):
    body = msg().to_body()
    del body[field]
    err = reason_of(signed(body))
    assert err.reason == "malformed"
    assert f"field {field!r}" in err.detail


@pytest.mark.parametrize("field,value", [("seq", "7"), ("seq", 7.5), ("seq", True), ("boot", "x"), ("time", None),
                                         ("sender", 3), ("type", ["heartbeat"]), ("body", []), ("v", "1")])
def test_field_of_the_wrong_type_is_malformed_and_named(field, value):
    body = msg().to_body()
    body[field] = value
    err = reason_of(signed(body))
    assert err.reason == "malformed" and f"field {field!r}" in err.detail


def test_wrong_version_is_malformed():
    body = msg().to_body()
    body["v"] = VERSION + 1
    err = reason_of(signed(body))
    assert err.reason == "malformed" and f"version {VERSION + 1}" in err.detail


def test_unknown_type_is_named():
    body = msg().to_body()
    body["type"] = "self-destruct"
    err = reason_of(signed(body))
    assert err.reason == "unknown-type" and "'self-destruct'" in err.detail and "heartbeat" in err.detail


def test_bad_signature_is_checked_before_the_fields():
    """A forged frame is rejected as a forgery even if its body is also malformed."""
    body = msg().to_body()
    del body["seq"]
    outer = {"m": body, "h": "0" * 64}
    assert reason_of(json.dumps(outer).encode()).reason == "bad-signature"


# ------------------------------------------------------------------ property: round trip over any JSON body
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=15)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(type=st.sampled_from(EVENT_TYPES), sender=st.text(min_size=1, max_size=12),
       boot=st.floats(0, 2e9, allow_nan=False), seq=st.integers(0, 2**62),
       body=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_property_encode_decode_round_trip(type, sender, boot, seq, body):
    m = Message(type, sender, boot, seq, 1.5, body)
    frame = encode(m, SECRET)
    assert decode(frame, SECRET) == m
    with pytest.raises(BusError) as exc:
        decode(frame, SECRET + b"x")
    assert exc.value.reason == "bad-signature"


# ------------------------------------------------------------------ sequencing and replay
def test_sequencer_numbers_messages_from_one_boot():
    s = Sequencer("sp1")
    a, b = s.make("hello", macs={}), s.make("heartbeat")
    assert (a.sender, a.seq, b.seq) == ("sp1", 1, 2)
    assert a.boot == b.boot and a.body == {"macs": {}}


def test_replay_guard_rejects_a_repeated_or_older_sequence():
    g = ReplayGuard()
    assert g.check(msg(seq=5)) is None
    why = g.check(msg(seq=5))
    assert why is not None and "sequence 5" in why and "already seen" in why
    assert g.check(msg(seq=4)) is not None
    assert g.check(msg(seq=6)) is None


def test_replay_guard_rejects_an_older_boot_and_accepts_a_newer_one():
    g = ReplayGuard()
    assert g.check(msg(boot=2000.0, seq=50)) is None
    why = g.check(msg(boot=1000.0, seq=51))
    assert why is not None and "older" in why
    # a restarted sender starts counting again from 1
    assert g.check(msg(boot=3000.0, seq=1)) is None
    assert g.check(msg(boot=2000.0, seq=99)) is not None, "the previous boot is now old"


def test_replay_guard_is_per_sender_and_forgets():
    g = ReplayGuard()
    assert g.check(msg(sender="ne1", seq=3)) is None
    assert g.check(msg(sender="ne2", seq=1)) is None, "another sender has its own numbering"
    assert g.check(msg(sender="ne1", seq=3)) is not None
    g.forget("ne1")
    assert g.check(msg(sender="ne1", seq=3)) is None


@pytest.mark.parametrize("frame", [b"[" * 100_000, b'{"m":' * 50_000 + b"1" + b"}" * 50_000],
                         ids=["deep-list", "deep-object"])
def test_deeply_nested_json_is_malformed_not_a_crash(frame):
    """Anyone on the management network can send this unsigned frame; it must come back as a
    BusError (the receivers catch only that), not a RecursionError that kills the receiver thread."""
    assert len(frame) <= MAX_FRAME
    err = reason_of(frame)
    assert err.reason == "malformed"
