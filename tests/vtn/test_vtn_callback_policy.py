"""Webhook callbacks cannot be turned against internal services (vtn.callback_policy): each attack is
performed against the facade over real HTTP and refused with a problem naming the rule, nothing
stored; an allowed host is notified at the address that was checked, with its name in the Host
header; a name that rebinds to loopback after the subscription was accepted is not POSTed to (a real
receiver on loopback records every hit). The address rules themselves are checked as invariants."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import uuid

import httpx
import pytest
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st

from vtn.callback_policy import CallbackPolicy, CallbackRefused, refusal, system_resolver

PUBLIC = "93.184.216.34"


class HookResolver:
    """A resolver the test controls for its `.test` names (`.invalid` ones do not resolve, without
    asking DNS); anything else goes to the system's."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}

    def __call__(self, host: str, port: int) -> list[str]:
        if host in self.names:
            return list(self.names[host])
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return system_resolver(host, port)


class Receiver:
    """A real HTTP server on loopback that records every request it gets."""

    def __init__(self, served) -> None:
        self.hits: list[dict] = []
        self.arrived = threading.Condition()
        app = FastAPI()

        @app.post("/{path:path}")
        async def hook(path: str, request: Request) -> dict:
            body = await request.body()
            with self.arrived:
                self.hits.append({"path": path, "host": request.headers.get("host"),
                                  "auth": request.headers.get("authorization"), "body": json.loads(body or b"{}")})
                self.arrived.notify_all()
            return {}

        self.base = served(app)
        self.port = int(self.base.rsplit(":", 1)[1])

    def wait_for(self, path: str, object_id: str | None = None, timeout: float = 10.0) -> list[dict]:
        """The hits on `path` (notifying of `object_id` when given), waiting up to `timeout` for one."""
        def matching() -> list[dict]:
            return [h for h in self.hits if h["path"] == path
                    and (object_id is None or h["body"].get("object", {}).get("id") == object_id)]

        deadline = time.monotonic() + timeout
        with self.arrived:
            while not matching() and time.monotonic() < deadline:
                self.arrived.wait(0.05)
            return matching()


@pytest.fixture(scope="module")
def receiver(vtn_net):
    return Receiver(vtn_net.served)


@pytest.fixture
def hooks(vtn_net):
    """The facade's policy for one test: only the name `hooks.test` allowed, `.test` names resolved by
    the test; the facade's own (loopback allowed) comes back afterwards."""
    notifier = vtn_net.context.notifier
    saved = notifier.policy
    resolver = HookResolver()
    resolver.names["hooks.test"] = ["127.0.0.1"]
    notifier.policy = CallbackPolicy(allow=["hooks.test"], resolver=resolver)
    try:
        yield resolver
    finally:
        notifier.policy = saved


@pytest.fixture
def ven(vtn_net):
    """A VEN client over HTTP; the subscriptions it made are deleted afterwards."""
    cfg = json.loads(vtn_net.vtn_json.read_text())
    token = httpx.post(cfg["token_url"], data={"grant_type": "client_credentials"},
                       auth=(cfg["ven_client_id"], cfg["ven_client_secret"])).json()["access_token"]
    with httpx.Client(base_url=vtn_net.base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield client
        for subscription in client.get("/subscriptions").json():
            client.delete(f"/subscriptions/{subscription['id']}")


def _subscription(url: str, name: str = "hooked") -> dict:
    return {"clientName": name, "objectOperations": [{"objects": ["VEN"], "operations": ["POST"],
                                                      "callbackUrl": url, "bearerToken": f"token-{name}"}]}


def _refused(answer: httpx.Response, rule: str) -> str:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["title"] == "Callback URL Refused" and problem["status"] == 400
    assert problem["type"].endswith("/callback-url-refused")
    assert f"objectOperations.0.callbackUrl refused ({rule})" in problem["detail"], problem["detail"]
    return problem["detail"]


ATTACKS = [  # (callback URL with {port} the receiver's, the rule that refuses it)
    ("http://127.0.0.1:{port}/hook/a", "loopback"),
    ("http://localhost:{port}/hook/a", "loopback"),  # /etc/hosts, through the system resolver
    ("http://[::1]:{port}/hook/a", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]:{port}/hook/a", "link-local"),
    ("http://10.0.0.5:8545/", "private"),
    ("http://172.16.3.4:8545/", "private"),
    ("http://192.168.1.10/", "private"),
    ("http://[fd12:3456::1]:{port}/", "private"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://224.0.0.1:{port}/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://0.0.0.0:{port}/hook/a", "unspecified"),
    ("http://[::ffff:127.0.0.1]:{port}/hook/a", "loopback (IPv4 127.0.0.1 inside IPv6)"),
    ("http://[::ffff:169.254.169.254]/", "link-local (IPv4 169.254.169.254 inside IPv6)"),
    ("http://2130706433:{port}/hook/a", "loopback"),  # decimal
    ("http://0177.0.0.1:{port}/hook/a", "loopback"),  # octal
    ("http://0x7f.1:{port}/hook/a", "loopback"),  # hex, short form
    ("http://inside.test:{port}/hook/a", "loopback"),  # a name that resolves to loopback
    ("http://mixed.test:{port}/hook/a", "private"),  # one public address and one private: refused
    ("http://user:secret@hooks.test:{port}/hook/a", "userinfo"),
    ("http://hooks.test:22/", "port"),
    ("http://nowhere.invalid:{port}/", "unresolvable"),
]


@pytest.mark.parametrize("url, rule", ATTACKS, ids=[url.split("//")[1].split("/")[0] for url, _ in ATTACKS])
def test_an_internal_callback_is_refused_and_nothing_stored(vtn_net, receiver, hooks, ven, url, rule):
    hooks.names["inside.test"] = ["127.0.0.1"]
    hooks.names["mixed.test"] = [PUBLIC, "10.1.2.3"]
    before = ven.get("/subscriptions").json()
    _refused(ven.post("/subscriptions", json=_subscription(url.format(port=receiver.port))), rule)
    assert ven.get("/subscriptions").json() == before
    assert ven.post("/vens", json={"venName": f"after-{uuid.uuid4().hex[:8]}"}).status_code == 201
    assert receiver.wait_for("hook/a", timeout=0.5) == []


def test_a_replace_to_an_internal_callback_is_refused_and_the_old_one_kept(vtn_net, receiver, hooks, ven):
    made = ven.post("/subscriptions", json=_subscription(f"http://hooks.test:{receiver.port}/hook/kept"))
    assert made.status_code == 201, made.text
    detail = _refused(ven.put(f"/subscriptions/{made.json()['id']}",
                              json=_subscription("http://169.254.169.254/latest/meta-data/")), "link-local")
    assert "169.254.169.254" in detail
    kept = ven.get(f"/subscriptions/{made.json()['id']}").json()
    assert kept["objectOperations"][0]["callbackUrl"] == f"http://hooks.test:{receiver.port}/hook/kept"


def test_an_allowed_host_is_notified_at_the_checked_address_with_its_name(vtn_net, receiver, hooks, ven):
    answer = ven.post("/subscriptions", json=_subscription(f"http://hooks.test:{receiver.port}/hook/allowed",
                                                           "allowed"))
    assert answer.status_code == 201, answer.text
    made = ven.post("/vens", json={"venName": f"notified-{uuid.uuid4().hex[:8]}"}).json()
    hits = receiver.wait_for("hook/allowed", made["id"])
    assert [(h["host"], h["auth"], h["body"]["objectType"], h["body"]["operation"], h["body"]["object"]["id"])
            for h in hits] == [(f"hooks.test:{receiver.port}", "Bearer token-allowed", "VEN", "POST", made["id"])]


@pytest.mark.parametrize("at_send", [["127.0.0.1"], [PUBLIC, "127.0.0.1"], ["::ffff:127.0.0.1"], ["10.0.0.7"]],
                         ids=["loopback", "public-and-loopback", "mapped-loopback", "private"])
def test_a_name_rebound_inside_after_the_subscription_is_not_posted_to(vtn_net, receiver, hooks, ven, caplog,
                                                                       at_send):
    caplog.set_level(logging.INFO, logger="vtn.notify")
    hooks.names["rebind.test"] = [PUBLIC]  # public when the subscription is made
    rebound = ven.post("/subscriptions", json=_subscription(f"http://rebind.test:{receiver.port}/hook/rebound",
                                                            "rebound"))
    assert rebound.status_code == 201, rebound.text
    control = ven.post("/subscriptions", json=_subscription(f"http://hooks.test:{receiver.port}/hook/control",
                                                            "control"))
    assert control.status_code == 201, control.text
    hooks.names["rebind.test"] = at_send  # and inside when the notification goes out
    made = ven.post("/vens", json={"venName": f"rebound-{uuid.uuid4().hex[:8]}"}).json()
    assert len(receiver.wait_for("hook/control", made["id"])) == 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [r for r in caplog.records if "rebind.test" in r.getMessage()]:
        time.sleep(0.05)
    refusals = [r.getMessage() for r in caplog.records if "rebind.test" in r.getMessage()]
    assert len(refusals) == 1 and "the callback policy refuses it" in refusals[0], refusals
    assert receiver.wait_for("hook/rebound", timeout=0.5) == []


def test_the_devnet_allow_list_admits_loopback_and_nothing_else():
    policy = CallbackPolicy(allow=["127.0.0.0/8", "::1"])
    assert policy.check("http://127.0.0.1:8545/").address == "127.0.0.1"
    assert policy.check("http://[::ffff:127.0.0.1]:9000/").address == "::ffff:7f00:1"
    checked = policy.check("http://localhost:9000/x?y=1")
    assert (checked.url, checked.headers) == ("http://127.0.0.1:9000/x?y=1", {"Host": "localhost:9000"})
    for url, rule in (("http://10.0.0.1:9000/", "private"), ("http://169.254.169.254/", "link-local"),
                      ("http://[fe80::1]:9000/", "link-local")):
        with pytest.raises(CallbackRefused) as refused:
            policy.check(url)
        assert refused.value.rule == rule


def test_https_names_the_host_in_sni_and_an_ip_literal_is_not_rewritten():
    resolver = HookResolver()
    resolver.names["public.test"] = [PUBLIC]
    policy = CallbackPolicy(resolver=resolver)
    checked = policy.check("https://public.test/hook?x=1")
    assert (checked.url, checked.headers, checked.extensions) == (f"https://{PUBLIC}/hook?x=1",
                                                                  {"Host": "public.test"},
                                                                  {"sni_hostname": "public.test"})
    literal = policy.check(f"http://{PUBLIC}:8080/h")
    assert (literal.url, literal.headers, literal.extensions) == (f"http://{PUBLIC}:8080/h", {}, {})
    for url, rule in (("ftp://public.test/", "scheme"), ("https://public.test:25/", "port"),
                      ("http://:pw@public.test/", "userinfo")):
        with pytest.raises(CallbackRefused) as refused:
            policy.check(url)
        assert refused.value.rule == rule


def test_a_bad_allow_list_entry_is_refused_by_the_settings():
    from pydantic import ValidationError

    from vtn.settings import VtnSettings

    with pytest.raises(ValidationError, match="neither an IP network nor a host name"):
        VtnSettings(callback_allow=["127.0.0.0/8", "not a host!"])
    assert VtnSettings(callback_allow=["10.1.0.0/16", "hooks.internal"]).callback_allow == ["10.1.0.0/16",
                                                                                            "hooks.internal"]


NAMED = {"loopback": "127.0.0.0/8", "private": "10.0.0.0/8", "link-local": "169.254.0.0/16",
         "carrier-grade NAT": "100.64.0.0/10", "multicast": "224.0.0.0/4", "unspecified": "0.0.0.0/8"}


@given(st.sampled_from(sorted(NAMED)), st.integers(min_value=0, max_value=2**32 - 1))
def test_every_address_of_a_named_block_is_refused_by_that_rule_in_every_ipv6_wrapping(rule, bits):
    network = ipaddress.IPv4Network(NAMED[rule])
    inside = network[bits % network.num_addresses]
    assert refusal(inside) == rule
    wrapped = (ipaddress.IPv6Address(f"::ffff:{inside}"), ipaddress.IPv6Address(f"64:ff9b::{inside}"),
               ipaddress.IPv6Address((0x2002 << 112) | (int(inside) << 80)))
    for address in wrapped:
        assert refusal(address) == f"{rule} (IPv4 {inside} inside IPv6)"


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_an_ipv4_address_and_its_mapped_form_are_judged_alike(bits):
    address = ipaddress.IPv4Address(bits)
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert (refusal(address) is None) == (refusal(mapped) is None)
    assert refusal(address) is not None or address.is_global  # what passes is globally routable


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_an_allowed_network_admits_its_addresses_and_no_others(bits):
    address = ipaddress.IPv4Address(bits)
    policy = CallbackPolicy(allow=["10.0.0.0/8"])
    url = f"http://{address}:8080/"
    if address in ipaddress.IPv4Network("10.0.0.0/8") or refusal(address) is None:
        assert policy.check(url).address == str(address)
    else:
        with pytest.raises(CallbackRefused):
            policy.check(url)


def test_a_callback_answering_an_endless_body_is_not_read():
    """A receiver that declares 1 GiB and keeps sending: the notifier takes the status and hangs up, so
    the receiver's writes fail long before the body is through."""
    from vtn.notify import Notifier

    declared = 1 << 30
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: dict = {}

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += connection.recv(65536)
            seen["request"] = head.decode() + "\r\n\r\n" + body.decode()
            connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\n\r\n".encode())
            sent, chunk = 0, b"x" * 65536
            try:
                while sent < declared:
                    sent += connection.send(chunk)
            except OSError as error:  # the notifier hung up
                seen["error"] = type(error).__name__
            seen["sent"] = sent

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    notifier = Notifier(timeout_seconds=5.0, policy=CallbackPolicy(allow=["127.0.0.1"]))
    try:
        status = notifier.send(f"http://127.0.0.1:{port}/hook", "t", {"objectType": "VEN", "operation": "POST",
                                                                       "object": {"id": "v"}, "targets": []})
        server.join(timeout=30)
    finally:
        notifier.close()
        listener.close()
    assert status == 200
    assert "Authorization: Bearer t" in seen["request"].replace("authorization", "Authorization")
    assert seen.get("error") in ("BrokenPipeError", "ConnectionResetError"), seen
    assert seen["sent"] < 64 * 1024 * 1024  # what socket buffers hold, far from the declared GiB


def _tls_pair(tmp_path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a server certificate for `name` only: (server context, client context)."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test callback CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
          .not_valid_after(now + timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


def test_https_goes_to_the_checked_address_with_the_name_in_sni_and_its_certificate(tmp_path):
    """A TLS receiver on loopback with a certificate for hooks.test only: a callback to hooks.test
    (resolved to 127.0.0.1 by the test) is verified against the name and sent with it in SNI and Host;
    one to another name resolving to the same address fails the certificate check and is not sent."""
    from vtn.notify import Notifier

    server_context, client_context = _tls_pair(tmp_path, "hooks.test")
    served: list[dict] = []
    server_context.sni_callback = lambda tls, name, _ctx: served.append({"sni": name}) and None
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            raw, _ = listener.accept()
            try:
                with server_context.wrap_socket(raw, server_side=True) as connection:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += connection.recv(65536)
                    host = next(line.split(b":", 1)[1].strip().decode() for line in request.split(b"\r\n")
                                if line.lower().startswith(b"host:"))
                    served[-1]["host"] = host
                    connection.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
            except (ssl.SSLError, OSError) as error:  # the client refused our certificate
                served[-1]["error"] = type(error).__name__

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    resolver = HookResolver()
    resolver.names.update({"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    notifier = Notifier(policy=CallbackPolicy(allow=["hooks.test", "other.test"], resolver=resolver),
                        verify=client_context)
    notification = {"objectType": "VEN", "operation": "POST", "object": {"id": "v"}, "targets": []}
    try:
        good = notifier.send(f"https://hooks.test:{port}/hook", None, notification)
        wrong = notifier.send(f"https://other.test:{port}/hook", None, notification)
        thread.join(timeout=30)
    finally:
        notifier.close()
        listener.close()
    assert (good, wrong) == (204, None)
    assert served[0] == {"sni": "hooks.test", "host": f"hooks.test:{port}"}
    assert served[1]["sni"] == "other.test" and "host" not in served[1] and served[1]["error"]
