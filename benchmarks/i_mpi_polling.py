"""Does a waiting MPI rank take CPU from the working one?  MPICH's busy polling against i's polite wait.

    python benchmarks/i_mpi_polling.py [--repeat 3] [--rounds 5]

In approach i, rank 0 loads and saves every image while the other ranks wait for it in a broadcast.
Here rank 0 decodes and encodes one sample photo (img1, 1.9 MP RGBA, PNG level 1: i's load and save)
``rounds`` times while the other ranks wait in Ibcast, with 1 rank (nobody waits: the reference), as
many ranks as cores, and twice as many (as ``run_all.py sweep workers`` goes).  The ways to wait:
- spin: Request.Wait(), MPICH's default, which polls the core until the data comes;
- yield: the same with MPIR_CVAR_POLLS_BEFORE_YIELD=1 (sched_yield after every poll);
- throttle: the same with MPIR_CVAR_CH4_PROGRESS_THROTTLE=1 and ..._NO_PROGRESS_COUNT=1 (usleep(1) after
  every poll that found nothing);
- polite: i's `Rank.finish`, Request.Testall then sleep 0.2 ms.
Printed per setting, over repeats x rounds: rank 0's seconds per round (median, min, max), that against
the 1-rank reference, and the CPU seconds a waiting rank burns per second it waits.  The launches of the
settings are interleaved within each repeat, so a busy spell of the machine hits them all alike.  Then
what the polite wait costs where data moves: Iscatterv and Igatherv of img1's pixels (7.5 MB) over as
many ranks as cores, waited for with Wait and with `Rank.finish`.  Last, mpiexec's start-up alone: launch to
every rank past a barrier, for a bare interpreter with mpi4py.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from approaches.cluster.mpi_launch import mpiexec

MODES = {
    "spin": {},
    "yield": {"MPIR_CVAR_POLLS_BEFORE_YIELD": "1"},
    "throttle": {"MPIR_CVAR_CH4_PROGRESS_THROTTLE": "1", "MPIR_CVAR_CH4_PROGRESS_THROTTLE_NO_PROGRESS_COUNT": "1"},
    "polite": {},
}


def rank_main(mode: str, rounds: int, photo: str) -> None:
    """Inside mpiexec: rank 0 loads and saves the photo each round while the others wait; rank 0 prints JSON."""
    import numpy as np
    from mpi4py import MPI

    from approaches.core.images import load_image, save_image
    from approaches.i_mpi import Rank

    comm = MPI.COMM_WORLD
    wait = Rank(MPI, {"report": None}).finish if mode == "polite" else MPI.Request.Wait
    header, work, waited, cpu = np.zeros(4, np.int64), [], 0.0, 0.0
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(rounds):
            comm.Barrier()
            start, used = time.perf_counter(), time.process_time()
            if comm.Get_rank() == 0:
                save_image(load_image(Path(photo)).pixels, Path(scratch) / "out.png", 1)
                work.append(time.perf_counter() - start)
            wait(comm.Ibcast(header, 0))
            if comm.Get_rank() != 0:
                waited += time.perf_counter() - start
                cpu += time.process_time() - used
    shares = np.zeros(comm.Get_size()) if comm.Get_rank() == 0 else None
    comm.Gather(np.array([cpu / waited if waited else 0.0]), shares, 0)
    if comm.Get_rank() == 0:
        print(json.dumps({"work": work, "cpu_share": shares[1:].tolist()}))


def transfer_main(mode: str, rounds: int) -> None:
    """Inside mpiexec: scatter img1's rows to every rank and gather them back, rounds times; rank 0 prints JSON."""
    import numpy as np
    from mpi4py import MPI

    from approaches.i_mpi import Rank, bands

    comm = MPI.COMM_WORLD
    wait = Rank(MPI, {"report": None}).finish if mode == "polite" else MPI.Request.Wait
    height, row = 1556, 1198 * 4  # img1: 1198 x 1556 RGBA
    plan = bands(height, comm.Get_size())
    counts, starts = [len(b) * row for b in plan], [b.start * row for b in plan]
    image = np.zeros((height, row), np.uint8) if comm.Get_rank() == 0 else None
    band = np.empty((len(plan[comm.Get_rank()]), row), np.uint8)
    whole = [image, counts, starts, MPI.BYTE] if image is not None else None
    seconds = []
    for _ in range(rounds):
        comm.Barrier()
        start = time.perf_counter()
        wait(comm.Iscatterv(whole, band, 0))
        wait(comm.Igatherv(band, whole, 0))
        seconds.append(time.perf_counter() - start)
    if comm.Get_rank() == 0:
        print(json.dumps({"seconds": seconds}))


def transfer(ranks: int, repeat: int) -> None:
    """Scatter and gather of img1's pixels, MPICH's Wait against i's polite wait, launches interleaved."""
    seconds: dict[str, list[float]] = {"spin": [], "polite": []}
    for _ in range(repeat):
        for mode, values in seconds.items():
            command = [str(mpiexec()), "-n", str(ranks), sys.executable, __file__, "--transfer", mode, "20"]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            values.extend(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
    for mode, values in seconds.items():
        print(f"scatter + gather of img1 (7.5 MB), {ranks} ranks, {mode:6s}: {_spread(values, 1000, 'ms')}")


def launch(ranks: int, mode: str, rounds: int, photo: Path) -> dict:
    env = {**os.environ, **MODES[mode]}
    command = [str(mpiexec()), "-n", str(ranks), sys.executable, __file__, "--rank", mode, str(rounds), str(photo)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def startup(ranks: int, repeat: int) -> None:
    """Seconds from launch to every rank ready: a bare interpreter with mpi4py, and i's ranks (imports, kernel)."""
    bare = ("import time; from mpi4py import MPI; MPI.COMM_WORLD.Barrier(); "
            "MPI.COMM_WORLD.Get_rank() or print(time.perf_counter())")
    seconds = []
    for _ in range(repeat):
        launched = time.perf_counter()
        done = subprocess.run([str(mpiexec()), "-n", str(ranks), sys.executable, "-c", bare],
                              capture_output=True, text=True, check=True)
        seconds.append(float(done.stdout) - launched)
    print(f"start-up, {ranks} ranks, python + mpi4py + barrier: {_spread(seconds)} (launch to every rank ready;"
          " i's own, with its imports and kernel load, is each rank's 'start' span)")


def _spread(values: list[float], scale: float = 1.0, unit: str = "s") -> str:
    median, low, high = (scale * v for v in (statistics.median(values), min(values), max(values)))
    return f"median {median:.3f} {unit} (min {low:.3f}, max {high:.3f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if mpiexec() is None:
        raise SystemExit("MPI is not installed: pip install mpich mpi4py")
    from approaches.samples import SAMPLES, ensure_samples

    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as folder:
        ensure_samples(Path(folder))
        photo = Path(folder) / f"{SAMPLES[0].name}.png"
        settings = [(1, "polite")] + [(ranks, mode) for ranks in (cores, 2 * cores) for mode in MODES]
        results: dict[tuple[int, str], dict] = {s: {"work": [], "cpu_share": []} for s in settings}
        for _ in range(args.repeat):
            for ranks, mode in settings:
                for key, values in launch(ranks, mode, args.rounds, photo).items():
                    results[ranks, mode][key].extend(values)
    reference = statistics.median(results[1, "polite"]["work"])
    print(f"rank 0 decodes + encodes {SAMPLES[0].name} while the other ranks wait ({cores} cores; "
          f"{args.repeat} launches x {args.rounds} rounds per setting, interleaved)")
    for (ranks, mode), result in results.items():
        share = f"{statistics.median(result['cpu_share']):.2f}" if result["cpu_share"] else "-"
        print(f"  {ranks} ranks, {mode:8s} rank 0: {_spread(result['work'])}  "
              f"{statistics.median(result['work']) / reference:.2f}x the 1-rank time; waiting rank's CPU/s {share}")
    transfer(cores, args.repeat)
    startup(cores, args.repeat * 2)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rank"]:
        rank_main(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1:2] == ["--transfer"]:
        transfer_main(sys.argv[2], int(sys.argv[3]))
    else:
        main()
