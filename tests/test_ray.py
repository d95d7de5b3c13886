"""--executor ray: cell groups as Ray tasks, the driver the only writer (local Ray and simulated clusters)."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest

from kanbench import cli, results
from kanbench.run import progress, ray_executor
from kanbench.run.kind import BaseKind, Request

try:
    import ray
except ImportError:  # tox's test environment installs the extra; without it only the first test can run
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="the ray extra is not installed: pip install 'kanbench[ray]'")

TESTS = Path(__file__).parent

SUITE = """
[suite]
name = "raytiny"
kind = "speed"
implementations = ["mlp", "fastkan"]
phases = ["forward", "backward"]
[axes]
widths = [[4, 3]]
batch_size = [2, 4]
grid_size = [5]
device = ["cpu", "cuda"]
dtype = ["float32"]
[timing]
processes = 2
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "raytiny.toml"
    path.write_text(SUITE)
    return path


@pytest.fixture(autouse=True)
def no_ray_left(request):
    yield
    if ray is not None and ray.is_initialized() and "local_ray" not in request.fixturenames:
        ray.shutdown()


@pytest.fixture(scope="class")
def local_ray():
    """One local Ray, as --executor ray starts alone, that the pool handlers of tests/ import in its workers."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2, include_dashboard=False, logging_level="WARNING", runtime_env={"env_vars": {"PYTHONPATH": path}}
    )
    yield ray
    ray.shutdown()


def keys(run: Path) -> set[tuple[str, str, str]]:
    return {(r.config_hash, r.phase, r.status) for r in results.read_records(run)}


def test_without_ray_the_run_exits_2_saying_how_to_install_it(suite, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    assert cli.main(["run", str(suite), "--out", str(tmp_path / "run"), "--executor", "ray", "--smoke"]) == 2
    assert "pip install 'kanbench[ray]'" in capsys.readouterr().err


def wait_for_nodes(ray, count: int, timeout_s: float = 60.0) -> None:
    """Block until the cluster shows count live nodes (simulated nodes join a moment after they start)."""
    deadline = time.monotonic() + timeout_s
    while sum(bool(n.get("Alive")) for n in ray.nodes()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Ray shows fewer than {count} live nodes after {timeout_s:g} s")
        time.sleep(0.2)


@needs_ray
@pytest.mark.usefixtures("local_ray")
class TestOnOneLocalRay:
    """Tests that need only a local Ray share one: starting and stopping one takes seconds."""

    def test_a_local_ray_measures_the_same_records_as_the_local_executor(self, suite, tmp_path, capsys):
        local, on_ray = tmp_path / "local", tmp_path / "ray"
        assert cli.main(["run", str(suite), "--out", str(local), "--smoke", "--quiet"]) == 0
        assert cli.main(["run", str(suite), "--out", str(on_ray), "--smoke", "--quiet", "--executor", "ray"]) == 0
        assert keys(on_ray) == keys(local)  # the cuda cells: skipped in both, the cluster has no GPU
        skipped = [r for r in results.read_records(on_ray) if r.status == "skipped"]
        assert skipped and all(r.reason == ray_executor.NO_GPU for r in skipped)
        measured = [r for r in results.read_records(on_ray) if r.status == "ok"]
        node = ray.get_runtime_context().get_node_id()
        assert measured and all(r.node and r.node["node_id"] == node for r in measured)
        assert all(r.node is None for r in results.read_records(local))
        env = results.read_environment(on_ray)
        assert list(env["nodes"]) == [node] and env["nodes"][node]["cpu_model"]
        frame = results.load(on_ray)
        assert set(frame.loc[frame.status == "ok", "node_id"]) == {node}

    def test_a_dry_run_shows_the_cluster_and_where_the_groups_go(self, suite, capsys):
        assert cli.main(["run", str(suite), "--dry-run", "--executor", "ray"]) == 0
        out = capsys.readouterr().out
        assert "Ray cluster: 1 node(s), 2 CPUs, 0 GPUs" in out
        assert "group 4x3 G5 k3 b2 cpu float32 (2 cells): one task, 1 cpus" in out
        assert "2 group task(s), up to 2 at once" in out

    def test_a_task_whose_worker_dies_is_retried_and_each_cell_comes_back_once(self, tmp_path):
        class Kind(BaseKind):
            handler, processes, threads, under = "pool_handlers:kill_parent_once", 1, 1, None

            def requests(self, group, index):
                return [Request(0, c, {"marker": str(tmp_path / "killed"), "cell": c.label()}, 60.0, c.label())
                        for c in group]  # fmt: skip

        class Cell:
            def __init__(self, name):
                self.name, self.device = name, "cpu"

            def label(self):
                return f"{self.name} 4x3 cpu"

        executor = ray_executor.RayExecutor(Kind())
        executor.attach(progress.Progress(2, 1.0, quiet=True, stream=io.StringIO()))
        cells = [Cell("a"), Cell("b")]
        out = list(executor.run([cells]))
        assert (tmp_path / "killed").exists()  # the first attempt's worker killed its task's process
        assert [c.name for c, _ in out] == ["a", "b"]  # each cell once, from the retried task
        assert all(replies[0].status == "ok" for _, replies in out)

    def test_a_task_that_keeps_dying_becomes_error_records_saying_why(self, tmp_path):
        class Kind(BaseKind):
            handler, processes, threads, under = "pool_handlers:kill_parent_always", 1, 1, None

            def requests(self, group, index):
                return [Request(0, c, {"cell": c.label()}, 60.0, c.label()) for c in group]

        class Cell:
            device = "cpu"

            def label(self):
                return "a 4x3 cpu"

        executor = ray_executor.RayExecutor(Kind())
        (cell, replies), *rest = list(executor.run([[Cell()]]))
        assert not rest and replies[0].status == "error"
        assert f"its process or node died {ray_executor.MAX_RETRIES + 1} times" in replies[0].reason


@needs_ray
def test_groups_follow_the_clusters_resources_and_a_gpu_that_is_not_there_is_a_skip(suite, tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)  # declares a GPU this machine does not have
    try:
        ray.init(address=cluster.address, include_dashboard=False, logging_level="WARNING")
        wait_for_nodes(ray, 2)
        out = tmp_path / "run"
        assert cli.main(["run", str(suite), "--out", str(out), "--smoke", "--quiet", "--executor", "ray",
                         "--address", cluster.address]) == 0  # fmt: skip
        records = results.read_records(out)
        cuda = [r for r in records if r.device == "cuda"]
        assert cuda and all(r.status == "skipped" for r in cuda)
        assert all("was given a GPU by Ray but torch.cuda.is_available() is False" in r.reason for r in cuda)
        assert {r.node["node_id"] for r in cuda} == {gpu_node.node_id}  # the GPU's node, nowhere else
        cpu = [r for r in records if r.device == "cpu"]
        assert cpu and all(r.status == "ok" for r in cpu)
    finally:
        ray.shutdown()
        cluster.shutdown()


@needs_ray
def test_a_run_whose_driver_was_killed_resumes_without_losing_or_repeating_a_record(tmp_path):
    import os
    import signal
    import subprocess
    import time

    suite = tmp_path / "four.toml"
    suite.write_text(
        SUITE.replace("batch_size = [2, 4]", "batch_size = [2, 4, 8, 16]").replace('"cpu", "cuda"', '"cpu"')
    )
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "kanbench", "run", str(suite), "--out", str(out), "--smoke", "--quiet",
           "--executor", "ray"]  # fmt: skip
    driver = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            path = out / results.RESULTS
            if path.exists() and path.read_bytes().count(b"\n") >= 1:  # a group is in: kill the driver now
                os.killpg(driver.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        driver.wait(30)
    finally:
        try:  # the driver and the local Ray it started (raylet, GCS: its process group) must not outlive the test
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = results.read_records(out, allow_partial_tail=True, allow_empty=True)
    assert driver.returncode == -signal.SIGKILL and 0 < len(before) < 16, len(before)  # killed mid-run
    assert cli.main(["run", str(suite), "--out", str(out), "--smoke", "--quiet", "--executor", "ray",
                     "--resume"]) == 0  # fmt: skip
    after = results.read_records(out)  # refuses a repeated record
    assert len(after) == 16 and all(r.status == "ok" for r in after)  # 2 impls x 4 batches x 2 phases
    assert {r.key for r in before} <= {r.key for r in after}


@needs_ray
def test_sigterm_of_a_real_ray_driver_shuts_ray_down_and_exits_143_without_a_stack_dump(tmp_path):
    import os
    import signal
    import subprocess
    import time

    suite = tmp_path / "four.toml"
    suite.write_text(
        SUITE.replace("batch_size = [2, 4]", "batch_size = [2, 4, 8, 16]").replace('"cpu", "cuda"', '"cpu"')
    )
    out, log = tmp_path / "run", tmp_path / "stderr"
    cmd = [sys.executable, "-m", "kanbench", "run", str(suite), "--out", str(out), "--smoke", "--quiet",
           "--executor", "ray"]  # fmt: skip
    with log.open("wb") as err:
        driver = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            path = out / results.RESULTS
            if path.exists() and path.read_bytes().count(b"\n") >= 1:  # a group is in: terminate the driver alone
                driver.send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
        driver.wait(60)
        gone = time.monotonic() + 15
        while time.monotonic() < gone and group_alive(driver.pid):  # the local Ray it started, shut down
            time.sleep(0.2)
        left = group_alive(driver.pid)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stderr = log.read_text(errors="replace")
    assert driver.returncode == 143, (driver.returncode, stderr[-2000:])
    assert "SIGTERM received" not in stderr and "terminated" in stderr, stderr[-2000:]
    assert not left  # no raylet or GCS outlives the driver
    assert results.read_environment(out)["run"]["complete"] is False


def group_alive(pgid: int) -> bool:
    import os

    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_tasks_gpu_is_named_by_uuid_without_touching_cuda(monkeypatch):
    assert ray_executor.gpu_uuid("GPU-1234-abcd,GPU-9") == "GPU-1234-abcd"  # Ray may hand out UUIDs
    assert "no GPU index or UUID" in ray_executor.gpu_uuid("")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert "nvidia-ml-py is not installed" in ray_executor.gpu_uuid("3")


class FakeRay:
    """Just enough of the ray module for the driver: a cluster of the given nodes, and an init that may hang."""

    class exceptions:  # noqa: N801 (ray.exceptions)
        WorkerCrashedError = NodeDiedError = type("Died", (Exception,), {})

    def __init__(self, nodes=({"CPU": 2.0},), init=None, wait=None):
        self._nodes = [{"Alive": True, "Resources": dict(n)} for n in nodes]
        self._init, self._wait = init, wait
        self.initialized = False

    def is_initialized(self):
        return self.initialized

    def init(self, **options):
        if self._init:
            self._init(options)
        self.initialized = True

    def shutdown(self):
        self.initialized = False

    def nodes(self):
        return self._nodes

    def cluster_resources(self):
        return {k: sum(n["Resources"].get(k, 0) for n in self._nodes) for k in ("CPU", "GPU")}

    def remote(self, **options):
        return lambda function: FakeTask()

    def wait(self, refs, num_returns):
        return self._wait(refs)


class FakeTask:
    def options(self, **ask):
        return self

    def remote(self, *arguments):
        return object()  # a task reference that never finishes


def cpu_suite(tmp_path: Path, threads: int) -> Path:
    path = tmp_path / f"t{threads}.toml"
    path.write_text(SUITE.replace('"cpu", "cuda"', '"cpu"') + f"threads = {threads}\n")
    return path


def test_an_address_where_no_ray_answers_is_refused_after_a_bounded_wait(suite, monkeypatch, capsys):
    import threading
    import time

    released = threading.Event()
    monkeypatch.setitem(sys.modules, "ray", FakeRay(init=lambda options: released.wait(10)))  # Ray retries on
    monkeypatch.setattr(ray_executor, "CONNECT_WAIT_S", 0.3, raising=False)
    begun = time.monotonic()
    try:
        code = cli.main(["run", str(suite), "--dry-run", "--executor", "ray", "--address", "127.0.0.1:9"])
    finally:
        released.set()
    assert code == 2 and time.monotonic() - begun < 5
    err = capsys.readouterr().err
    assert "no Ray cluster answered at 127.0.0.1:9 within 0.3 s" in err, err
    assert "Connection refused" in err or "connecting" in err  # what the port itself said


def test_an_unanswering_ray_address_from_the_environment_is_named_as_such(suite, monkeypatch, capsys):
    import threading

    released = threading.Event()
    monkeypatch.setitem(sys.modules, "ray", FakeRay(init=lambda options: released.wait(10)))
    monkeypatch.setattr(ray_executor, "CONNECT_WAIT_S", 0.3)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # ray.init joins it without --address
    try:
        assert cli.main(["run", str(suite), "--dry-run", "--executor", "ray"]) == 2
    finally:
        released.set()
    assert "no Ray cluster answered at 127.0.0.1:9 (RAY_ADDRESS) within 0.3 s" in capsys.readouterr().err


def test_an_empty_address_is_refused_not_read_as_a_local_ray(suite, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", FakeRay())
    assert cli.main(["run", str(suite), "--dry-run", "--executor", "ray", "--address", ""]) == 2
    assert "--address is empty" in capsys.readouterr().err


def test_a_ray_missing_one_of_its_own_modules_says_so(suite, tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken" / "ray"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("import kanbench_no_such_module\n")
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.syspath_prepend(str(broken.parent))
    assert cli.main(["run", str(suite), "--dry-run", "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert "`import ray` failed (ModuleNotFoundError: No module named 'kanbench_no_such_module')" in err, err
    assert "pip install 'kanbench[ray]'" in err


def test_a_group_no_node_can_hold_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", FakeRay(nodes=[{"CPU": 2.0}, {"CPU": 1.0, "GPU": 1.0}]))
    suite, out = cpu_suite(tmp_path, 64), tmp_path / "run"
    for dry in ([], ["--dry-run"]):
        assert cli.main(["run", str(suite), "--out", str(out), "--smoke", "--executor", "ray", *dry]) == 2
        assert not out.exists()  # nothing measured, nothing written: the same --out can be run again
        err = capsys.readouterr().err
        assert "asks for 64 cpus on one node" in err and "the largest has 2 cpus" in err, err
        assert "lower [timing].threads (or [training].threads) to at most 2" in err


def test_a_group_needs_its_cpus_and_gpu_on_one_node(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", FakeRay(nodes=[{"CPU": 4.0}, {"CPU": 0.0, "GPU": 1.0}]))
    kind = type("Kind", (BaseKind,), {"threads": 1, "handler": "x:y"})()
    executor = ray_executor.RayExecutor(kind)
    cuda = type("Cell", (), {"device": "cuda", "label": lambda self: "a 4x3 cuda"})()
    with pytest.raises(ray_executor.UsageError, match="asks for 1 gpus, 1 cpus on one node"):
        executor.check_fits([[cuda]])  # the most CPUs and the most GPUs are on different nodes


def test_a_ray_that_fails_to_import_exits_2_with_the_install_hint(suite, tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken" / "ray"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise RuntimeError("x")\n')
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.syspath_prepend(str(broken.parent))
    assert cli.main(["run", str(suite), "--dry-run", "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'kanbench[ray]'" in err and "RuntimeError: x" in err, err


def test_sigterm_of_the_driver_exits_143_as_a_local_run_does(tmp_path, monkeypatch, capsys):
    import os
    import signal
    import time

    def terminated_while_waiting(refs):  # as Ray's wait turns a signal handler's exception into KeyboardInterrupt
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None
        raise AssertionError("SIGTERM did not interrupt the wait")

    class NotHandled(BaseException):
        pass

    def test_handler(signum, frame):  # in place of the default (which would end pytest itself)
        raise NotHandled

    before = signal.signal(signal.SIGTERM, test_handler)
    try:
        monkeypatch.setitem(sys.modules, "ray", FakeRay(wait=terminated_while_waiting))
        out = tmp_path / "run"
        code = cli.main(["run", str(cpu_suite(tmp_path, 1)), "--out", str(out), "--smoke", "--quiet",
                         "--executor", "ray"])  # fmt: skip
        assert code == 143
        assert signal.getsignal(signal.SIGTERM) is test_handler  # the driver's own handler is back
        assert results.read_environment(out)["run"]["complete"] is False
    finally:
        signal.signal(signal.SIGTERM, before)
