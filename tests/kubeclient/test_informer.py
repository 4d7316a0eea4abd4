"""The informer against the harness's API server over HTTP: a list, then a watch from the
list's resourceVersion; a watch that ends resumed without a relist; bookmarks; 410 Gone,
in the stream or as the answer, relisted at once; other failures backed off; stop() while
a watch is blocked or a backoff is waited out.

No test sleeps for a set time: each waits (bounded) for what it expects, and timings are
asserted from the informer's own log (the waits it chose) and from when the API server
saw each request (that it really waited).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import kmock
import pytest

from modelrollout.harness.apiserver.faults import Fault
from modelrollout.harness.emulator import KubeEmulator
from modelrollout.kubeclient import Api, Backoff, Informer, configuration, for_informers

ME = "informer-test"
SERVICES = kmock.resource("", "v1", "services")
WAIT_SECONDS = 10.0  # a bound on every wait, far below what a missed cut or backoff would take
log = logging.getLogger("modelrollout.tests.informer")


def service(name: str, namespace: str = "ml", **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"ports": [{"port": 80}]}}


def name_of(obj: dict) -> str:
    return obj["metadata"]["name"]


class Seen:
    """What an informer handed over, from its thread; ``wait`` blocks (bounded) until a check holds."""

    def __init__(self) -> None:
        self.lists: list[list[str]] = []
        self.last_listed: list[dict] = []
        self.changes: list[tuple[str, str]] = []
        self.versions: list[str] = []  # of each change
        self._condition = threading.Condition()

    def listed(self, objects: list[dict]) -> None:
        with self._condition:
            self.lists.append(sorted(name_of(o) for o in objects))
            self.last_listed = objects
            self._condition.notify_all()

    def changed(self, event_type: str, obj: dict) -> None:
        with self._condition:
            self.changes.append((event_type, name_of(obj)))
            self.versions.append(obj["metadata"]["resourceVersion"])
            self._condition.notify_all()

    def wait(self, check: Callable[[], object], what: str, seconds: float = WAIT_SECONDS) -> None:
        with self._condition:
            assert self._condition.wait_for(check, seconds), \
                f"{what}: not within {seconds} s; lists {self.lists}, changes {self.changes}"


def eventually(check: Callable[[], object], what: str, seconds: float = WAIT_SECONDS) -> None:
    done = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        done.wait(0.02)
    assert check(), f"{what}: not within {seconds} s"


# --- fixtures ---


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeEmulator]:
    with KubeEmulator(tmp_path) as emulator:
        yield emulator


@pytest.fixture
def api(kube: KubeEmulator) -> Iterator[Api]:
    client = Api(for_informers(configuration(kube.kubeconfig_for(ME)), 2), timeout_seconds=5.0)
    yield client
    client.close()


@pytest.fixture
def start(api: Api) -> Iterator[Callable[..., tuple[Informer, Seen]]]:
    """``start(namespace="ml", **informer_options)``: a running informer of Services and what it saw.
    Every informer is stopped at teardown and must end."""
    started: list[Informer] = []

    def run(namespace: str | None = "ml", **options: object) -> tuple[Informer, Seen]:
        seen = Seen()
        informer = Informer(api, "Service", namespace, listed=seen.listed, changed=seen.changed, log=log,
                            **options)
        started.append(informer)
        informer.start()
        return informer, seen

    yield run
    for informer in started:
        informer.stop()
    for informer in started:
        assert informer.join(WAIT_SECONDS), f"{informer.thread.name} did not end"


def calls(kube: KubeEmulator, verb: str) -> int:
    """How many ``verb`` calls on Services the informer made (the API server's audit)."""
    return sum(c["count"] for c in kube.audit()
               if c["identity"] == ME and c["verb"] == verb and c["resource"] == "services")


def watched_from(kube: KubeEmulator) -> list[str | None]:
    """The resourceVersion of each watch of Services the API server received, in order."""
    def versions() -> list[str | None]:
        return [r.params.get("resourceVersion") for r in kube.emulator[kmock.action.WATCH][SERVICES]]

    return kube.on_loop(versions)


def answer_the_next_watch(kube: KubeEmulator, *events: dict) -> None:
    """The next watch of Services gets ``events`` and ends; later ones fall through to the API
    server's own watch (kmock skips a reaction that answers StopIteration)."""
    once = iter([events])
    kube.on_loop(lambda: kube.emulator[kmock.action.WATCH][SERVICES] << (lambda: next(once, StopIteration)))


def pauses(records: list[logging.LogRecord]) -> list[float]:
    """The waits the informer chose after each failure, as it logged them."""
    return [r.retry_seconds for r in records if r.name == log.name and hasattr(r, "retry_seconds")]


# --- list, then watch ---


def test_a_list_then_a_watch_from_its_resource_version_sees_each_change(kube, start):
    kube.create(service("a"))
    kube.create(service("b"))
    kube.create(service("elsewhere", namespace="other"))
    _, seen = start("ml")
    seen.wait(lambda: seen.lists, "the first list")
    assert seen.lists == [["a", "b"]]
    eventually(lambda: calls(kube, "watch") == 1, "the watch opened")

    created = kube.create(service("c"))
    kube.merge_patch("v1", "Service", "a", {"metadata": {"labels": {"tier": "gold"}}}, "ml")
    kube.delete("v1", "Service", "b", "ml")
    kube.create(service("late", namespace="other"))
    seen.wait(lambda: len(seen.changes) >= 3, "three changes")
    # Watched from the list's resourceVersion: a and b were not sent again as ADDED.
    assert seen.changes == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert seen.versions[0] == created["metadata"]["resourceVersion"]
    (first_watch,) = watched_from(kube)
    assert first_watch and int(first_watch) < int(seen.versions[0])
    assert calls(kube, "list") == 1


def test_every_namespace_and_a_label_selector_keep_to_what_is_selected(kube, start):
    kube.create(service("mine", app="iris"))
    kube.create(service("theirs"))
    kube.create(service("mine-too", namespace="other", app="digits"))
    _, seen = start(None, label_selector="app")
    seen.wait(lambda: seen.lists, "the first list")
    assert seen.lists == [["mine", "mine-too"]]
    eventually(lambda: calls(kube, "watch") == 1, "the watch opened")
    kube.create(service("unlabelled", namespace="other"))
    kube.create(service("labelled", namespace="third", app="x"))
    seen.wait(lambda: seen.changes, "a change")
    assert seen.changes == [("ADDED", "labelled")]


def test_a_watch_that_ends_is_resumed_from_the_last_resource_version_without_a_relist(kube, start):
    kube.create(service("a"))
    _, seen = start("ml", watch_seconds=(1, 1))  # the API server ends each watch after 1 s
    seen.wait(lambda: seen.lists, "the first list")
    eventually(lambda: calls(kube, "watch") >= 2, "a second watch after the first ended")
    created = kube.create(service("b"))
    version = created["metadata"]["resourceVersion"]
    seen.wait(lambda: seen.changes, "b added")
    eventually(lambda: version in watched_from(kube), "a watch resumed from b's resourceVersion")
    kube.merge_patch("v1", "Service", "b", {"metadata": {"labels": {"x": "1"}}}, "ml")
    seen.wait(lambda: len(seen.changes) >= 2, "b modified")
    eventually(lambda: calls(kube, "watch") >= 5, "more watches, each resumed")

    assert seen.changes == [("ADDED", "b"), ("MODIFIED", "b")]  # nothing sent twice
    assert seen.lists == [["a"]] and calls(kube, "list") == 1
    versions = [int(v) for v in watched_from(kube) if v]
    assert versions == sorted(versions) and versions[-1] == int(seen.versions[-1])


def test_a_bookmark_moves_the_resource_version_and_is_not_a_change(kube, start):
    _, seen = start("ml", watch_seconds=(1, 1))
    seen.wait(lambda: seen.lists == [[]], "the first list")
    # Writes the informer does not watch move the server's resourceVersion on; a real API
    # server tells a quiet watch so with a BOOKMARK (the harness's sends none: one is injected).
    moved = [kube.create(service(f"x{i}", namespace="other")) for i in range(3)]
    version = moved[-1]["metadata"]["resourceVersion"]
    answer_the_next_watch(kube, {"type": "BOOKMARK", "object": {
        "apiVersion": "v1", "kind": "Service", "metadata": {"resourceVersion": version}}})
    eventually(lambda: version in watched_from(kube), "a watch resumed from the bookmark's resourceVersion")
    kube.create(service("after"))
    seen.wait(lambda: seen.changes, "a change after the bookmark")
    assert seen.changes == [("ADDED", "after")] and calls(kube, "list") == 1


# --- 410 Gone ---


def gone_in_the_stream(kube: KubeEmulator) -> None:
    answer_the_next_watch(kube, {"type": "ERROR", "object": {
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 410, "reason": "Expired",
        "message": "too old resource version: 1 (2)"}})


def gone_as_the_answer(kube: KubeEmulator) -> None:
    kube.inject(Fault(410, verbs={"watch"}, identity=ME, count=1))


@pytest.mark.parametrize("gone", [gone_in_the_stream, gone_as_the_answer], ids=["in-the-stream", "answered"])
def test_410_gone_relists_at_once(kube, start, caplog, gone):
    caplog.set_level(logging.INFO, logger=log.name)
    kube.create(service("a"))
    gone(kube)
    # A backoff of a minute: relisting within the bound shows the 410 did not wait it out.
    _, seen = start("ml", backoff=Backoff(60.0, 60.0))
    seen.wait(lambda: len(seen.lists) == 2, "a relist after 410 Gone")
    assert seen.lists == [["a"], ["a"]] and calls(kube, "list") == 2
    assert "watch expired (410 Gone); relisting" in caplog.text
    assert "watch failed" not in caplog.text
    kube.create(service("b"))
    seen.wait(lambda: seen.changes, "changes seen after the relist")
    assert seen.changes == [("ADDED", "b")]


def test_a_second_410_in_a_row_waits_out_the_backoff(kube, start, caplog):
    caplog.set_level(logging.INFO, logger=log.name)
    kube.inject(Fault(410, verbs={"watch"}, identity=ME, count=2))
    _, seen = start("ml", backoff=Backoff(60.0, 60.0))
    eventually(lambda: pauses(caplog.records), "the second 410 backed off")
    assert seen.lists == [[], []]  # the first 410 relisted at once, the second waits
    (pause,) = pauses(caplog.records)
    assert 30.0 <= pause <= 60.0
    assert "410 Gone for GET /api/v1/namespaces/ml/services (watch)" in caplog.text


# --- other failures ---


def test_failures_back_off_doubling_with_jitter_and_a_watch_that_works_resets_it(kube, start, caplog):
    caplog.set_level(logging.INFO, logger=log.name)
    lists_refused = kube.inject(Fault(500, verbs={"list"}, identity=ME, count=4))
    _, seen = start("ml", backoff=Backoff(0.2, 0.8), watch_seconds=(1, 1))
    seen.wait(lambda: seen.lists, "a list once the API server answers again")
    chosen = pauses(caplog.records)
    assert len(chosen) == 4, chosen
    # Each wait is drawn from the upper half of its step: 0.2, 0.4, 0.8, then capped at 0.8.
    for pause, step in zip(chosen, (0.2, 0.4, 0.8, 0.8), strict=True):
        assert step / 2 <= pause <= step, chosen
    # ... and really waited: the API server saw each attempt at least that long after the last.
    arrivals = [at for at, _ in lists_refused.refused]
    assert all(b - a >= pause - 0.01 for a, b, pause in zip(arrivals, arrivals[1:], chosen, strict=False))
    assert "500 Internal Server Error for GET /api/v1/namespaces/ml/services: Internal error occurred" \
        in caplog.text

    # A watch that stayed open for its second resets the backoff: the next failure waits the first step.
    eventually(lambda: calls(kube, "watch") >= 1, "the first watch opened")
    kube.inject(Fault(500, verbs={"watch"}, identity=ME, count=1))
    eventually(lambda: len(pauses(caplog.records)) == 5, "the refused watch backed off")
    assert 0.1 <= pauses(caplog.records)[-1] <= 0.2
    seen.wait(lambda: len(seen.lists) == 2, "a relist after the refused watch")


def test_an_api_server_outage_is_retried_until_it_is_back_and_a_relist_catches_up(kube, start, caplog):
    kube.create(service("a"))
    _, seen = start("ml", backoff=Backoff(0.2, 0.8))
    seen.wait(lambda: seen.lists, "the first list")
    eventually(lambda: calls(kube, "watch") == 1, "the watch opened")
    with kube.outage():
        eventually(lambda: len(pauses(caplog.records)) >= 2, "refused reconnects, backed off")

        # A write the informer cannot see while cut off (straight into the emulator's store).
        def write_while_down() -> None:
            kube.emulator.objects["v1/services", "ml", "a"].patch({"metadata": {"labels": {"x": "1"}}})

        kube.on_loop(write_while_down)
    seen.wait(lambda: len(seen.lists) == 2, "a relist once it is back")
    assert seen.lists == [["a"], ["a"]]
    assert seen.last_listed[0]["metadata"]["labels"] == {"x": "1"}
    assert all(p <= 0.8 for p in pauses(caplog.records))
    assert "watch failed: services in ml: " in caplog.text


# --- stop ---


def test_stop_cuts_a_watch_blocked_on_a_quiet_stream(kube, start):
    informer, seen = start("ml")  # the API server would end the watch after 4 to 6 minutes
    seen.wait(lambda: seen.lists, "the first list")
    eventually(lambda: calls(kube, "watch") == 1, "the watch opened")
    informer.stop()
    assert informer.join(WAIT_SECONDS)
    assert calls(kube, "watch") == 1 and calls(kube, "list") == 1


def test_stop_cuts_a_backoff_wait_short(kube, start, caplog):
    caplog.set_level(logging.INFO, logger=log.name)
    kube.inject(Fault(500, verbs={"list"}, identity=ME))
    informer, seen = start("ml", backoff=Backoff(60.0, 60.0))
    eventually(lambda: pauses(caplog.records), "the first failure backed off")
    informer.stop()
    assert informer.join(WAIT_SECONDS)
    assert seen.lists == [] and calls(kube, "list") == 1
