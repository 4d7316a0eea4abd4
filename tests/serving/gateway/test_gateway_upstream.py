"""Upstream connections and endpoint choice, against real sockets on loopback."""

from __future__ import annotations

import asyncio

import pytest
from modelrollout.serving.contract.routes import Endpoint
from modelrollout.serving.gateway.balancer import Balancer
from modelrollout.serving.gateway.upstream import EndpointPool, UpstreamError

from tests.support.processes import free_port


class TinyHTTPServer:
    """An asyncio HTTP/1.1 server whose behaviour a test chooses per request."""

    def __init__(self, behaviour: str = "ok") -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> TinyHTTPServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")), 0,
                )
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                if self.behaviour == "close":  # read the request, answer nothing
                    writer.close()
                    return
                if self.behaviour == "slow":
                    await asyncio.sleep(5)
                reply = b'{"echo":' + str(len(body)).encode() + b"}"
                chunked = self.behaviour == "chunked"
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-extra: 1\r\n"
                    + (b"transfer-encoding: chunked\r\n\r\n" + hex(len(reply))[2:].encode() + b"\r\n"
                       + reply + b"\r\n0\r\n\r\n" if chunked
                       else b"content-length: " + str(len(reply)).encode() + b"\r\n\r\n" + reply)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.mark.parametrize("behaviour", ["ok", "chunked"])
def test_requests_reuse_one_keep_alive_connection(behaviour):
    async def scenario():
        async with TinyHTTPServer(behaviour) as server:
            pool = EndpointPool("127.0.0.1", server.port)
            for size in (0, 10, 1000):
                response = await pool.request(b"POST", b"/x", [(b"x-request-id", b"r1")], b"a" * size, 5)
                assert response.status == 200 and response.body == b'{"echo":%d}' % size
                assert (b"x-extra", b"1") in response.headers
            assert server.connections == 1
            assert b"x-request-id: r1" in server.requests[0] and server.requests[2].endswith(b"a" * 1000)
            pool.close()

    run(scenario())


def test_refused_connection_is_an_error_before_sending():
    async def scenario():
        pool = EndpointPool("127.0.0.1", free_port())
        with pytest.raises(UpstreamError) as info:
            await pool.request(b"POST", b"/x", [], b"{}", 5)
        assert info.value.sent is False and pool.outstanding == 0

    run(scenario())


def test_connection_closed_after_the_request_was_read_counts_as_sent():
    async def scenario():
        async with TinyHTTPServer("close") as server:
            pool = EndpointPool("127.0.0.1", server.port)
            with pytest.raises(UpstreamError) as info:
                await pool.request(b"POST", b"/x", [], b"{}", 5)
            assert info.value.sent is True  # a fresh connection took the request: no replay
            assert len(server.requests) == 1

    run(scenario())


def test_slow_upstream_times_out_and_frees_the_connection():
    async def scenario():
        async with TinyHTTPServer("slow") as server:
            pool = EndpointPool("127.0.0.1", server.port)
            with pytest.raises(TimeoutError):
                await pool.request(b"POST", b"/x", [], b"{}", 0.2)
            assert pool.outstanding == 0
            server.behaviour = "ok"
            response = await pool.request(b"POST", b"/x", [], b"{}", 5)
            assert response.status == 200 and server.connections == 2  # the timed-out one is gone

    run(scenario())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_least_outstanding_prefers_the_idle_endpoint():
    balancer = Balancer("least-outstanding")
    a, b = Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2)
    balancer.pool(a).outstanding = 3
    assert {balancer.pick((a, b)).port for _ in range(10)} == {2}
    balancer.pool(a).outstanding = 0
    assert {balancer.pick((a, b)).port for _ in range(10)} == {1, 2}  # tie: rotate


def test_round_robin_rotates_whatever_is_outstanding():
    balancer = Balancer("round-robin")
    endpoints = (Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2), Endpoint("127.0.0.1", 3))
    balancer.pool(endpoints[0]).outstanding = 9
    assert [balancer.pick(endpoints).port for _ in range(6)] == [1, 2, 3, 1, 2, 3]


def test_failing_endpoint_is_ejected_then_returns():
    clock = Clock()
    balancer = Balancer(eject_after=3, ejection_seconds=10, clock=clock)
    bad, good = Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2)
    assert [balancer.failed(balancer.pool(bad)) for _ in range(3)] == [False, False, True]
    assert balancer.is_ejected(bad)
    assert {balancer.pick((bad, good)).port for _ in range(10)} == {2}
    clock.now += 10.5
    assert not balancer.is_ejected(bad)
    assert {balancer.pick((bad, good)).port for _ in range(10)} == {1, 2}


def test_success_resets_the_failure_count():
    balancer = Balancer(eject_after=3, clock=Clock())
    endpoint = Endpoint("127.0.0.1", 1)
    pool = balancer.pool(endpoint)
    balancer.failed(pool)
    balancer.failed(pool)
    balancer.succeeded(pool)
    assert balancer.failed(pool) is False and not balancer.is_ejected(endpoint)


def test_when_every_endpoint_is_ejected_all_are_tried():
    clock = Clock()
    balancer = Balancer(eject_after=1, clock=clock)
    a, b = Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2)
    balancer.failed(balancer.pool(a))
    balancer.failed(balancer.pool(b))
    assert {balancer.pick((a, b)).port for _ in range(10)} == {1, 2}
    assert balancer.pick((a,), exclude=balancer.pool(a)) is None


def test_a_kept_alive_connection_closed_before_answering_may_be_retried():
    async def scenario():
        async with TinyHTTPServer("ok") as server:
            pool = EndpointPool("127.0.0.1", server.port)
            await pool.request(b"POST", b"/x", [], b"{}", 5)
            server.behaviour = "close"  # the server drops the kept-alive connection
            with pytest.raises(UpstreamError) as info:
                await pool.request(b"POST", b"/x", [], b"{}", 5)
            assert info.value.sent is False

    run(scenario())


def test_connections_idle_too_long_are_not_reused():
    async def scenario():
        async with TinyHTTPServer("ok") as server:
            pool = EndpointPool("127.0.0.1", server.port, max_idle_seconds=0.1)
            await pool.request(b"POST", b"/x", [], b"{}", 5)
            await asyncio.sleep(0.2)
            await pool.request(b"POST", b"/x", [], b"{}", 5)
            assert server.connections == 2

    run(scenario())


def test_a_later_request_times_out_although_an_earlier_one_armed_the_deadline_timer():
    # One timer per pool, for the earliest deadline in flight: a request that starts while
    # that timer is armed for an earlier (finished) request must still get its own deadline.
    async def scenario():
        async with TinyHTTPServer("ok") as server:
            pool = EndpointPool("127.0.0.1", server.port)
            await pool.request(b"POST", b"/x", [], b"{}", 0.3)
            server.behaviour = "slow"
            answers: list = []
            loop = asyncio.get_running_loop()
            started = loop.time()
            call = pool.start(b"POST", b"/x", [], b"{}", 0.3, lambda *answer: answers.append(answer))
            assert call is not None  # the kept-alive connection was idle: sent at once
            while not answers:
                await asyncio.sleep(0.01)
            assert isinstance(answers[0][1], TimeoutError) and answers[0][0] is None
            assert 0.25 < loop.time() - started < 1.0
            assert pool.outstanding == 0 and len(answers) == 1

    run(scenario())


def test_start_needs_an_idle_connection_and_cancel_drops_the_answer():
    async def scenario():
        async with TinyHTTPServer("ok") as server:
            pool = EndpointPool("127.0.0.1", server.port)
            assert pool.start(b"POST", b"/x", [], b"{}", 5, print) is None  # nothing to reuse yet
            await pool.request(b"POST", b"/x", [], b"{}", 5)
            server.behaviour = "slow"
            answers: list = []
            call = pool.start(b"POST", b"/x", [], b"{}", 5, lambda *answer: answers.append(answer))
            await asyncio.sleep(0.1)
            call.cancel()  # the client left
            await asyncio.sleep(0.1)
            assert answers == [] and pool.outstanding == 0
            assert pool.start(b"POST", b"/x", [], b"{}", 5, print) is None  # its connection is closed

    run(scenario())


def test_the_gateway_retries_a_kept_alive_connection_the_server_closed_on_another_endpoint():
    # GatewayApp's fast path (no task per request) sends on the idle connection at once; a
    # connection that turns out closed before any answer goes on as forward() would: retried
    # on the revision's other endpoint.
    from modelrollout.serving.contract.routes import parse_route_table
    from modelrollout.serving.gateway.app import GatewayApp
    from modelrollout.serving.gateway.settings import GatewaySettings

    async def scenario():
        async with TinyHTTPServer("ok") as a, TinyHTTPServer("ok") as b:
            app = GatewayApp(GatewaySettings(upstream_timeout_seconds=5), [])
            app.routes.update(parse_route_table({"models": {"m": {"revisions": [
                {"name": "v1", "role": "stable", "weight": 100,
                 "endpoints": [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]}]}}}), "test")
            request = (b"POST", b"/v2/models/m/infer", b"", [(b"content-type", b"application/json")], b"{}")
            for _ in range(4):  # connect to both
                assert (await app.handle(*request)).status == 200
            assert a.connections == 1 and b.connections == 1  # kept alive, both used
            a.behaviour = "close"  # from now on a reads a request and closes without answering
            seen_by_a, seen_by_b = len(a.requests), len(b.requests)
            for _ in range(4):
                response = await app.handle(*request)
                assert response.status == 200
                assert dict(response.headers)[b"x-modelrollout-revision"] == b"v1"
                if len(a.requests) > seen_by_a:
                    break
            assert len(a.requests) == seen_by_a + 1  # the kept-alive connection took it, then closed
            assert len(b.requests) >= seen_by_b + 1  # and b answered it
            app.balancer.close()

    run(scenario())
