"""`make compile`: `ape compile`, shown as one progress line instead of Ape's list of every source.

The rule: the compiler's own output is kept whole in `.build/compile.log` and printed only when the
compile fails (then it is what the developer needs); on success one line says how many sources were
compiled (ours and OpenZeppelin's), with which compiler, in how long. While it runs, a terminal shows
a rich spinner with the elapsed time and a log (no TTY) gets a line every `NOTICE_SECONDS`, so a long
compile is never silent. Ape compiles everything in one standard-JSON call, so there is no honest
per-file progress to show; the spinner says so by showing time, not a percentage.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOG = REPO / ".build" / "compile.log"
NOTICE_SECONDS = 15


def _summary(output: str, seconds: float) -> str:
    """One line saying what the compile did, from Ape's output."""
    sources = re.findall(r"^\s+(\S+\.sol)\s*$", output, flags=re.MULTILINE)
    compiler = re.search(r"Solidity compiler '([^']+)'", output)
    if not sources:
        return f"contracts up to date ({seconds:.0f} s)"
    library = sum(1 for s in sources if "/openzeppelin/" in s)
    plural = lambda n, what: f"{n} {what} source{'' if n == 1 else 's'}"  # noqa: E731
    return (f"compiled {plural(len(sources) - library, 'negawatt')} and {plural(library, 'OpenZeppelin')}"
            f"{' with solc ' + compiler.group(1) if compiler else ''} in {seconds:.0f} s (log: {LOG.relative_to(REPO)})")


def _run(command: list[str], tick) -> tuple[int, str]:
    """Run `command`, calling `tick(elapsed)` about once a second until it ends."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(process.stdout.read()), daemon=True)
    reader.start()
    began = time.monotonic()
    while process.poll() is None:
        tick(time.monotonic() - began)
        time.sleep(1)
    reader.join()
    return process.returncode, "".join(chunks)


def main() -> int:
    """Compile, show progress, keep the log; exit with Ape's exit code."""
    from rich.console import Console

    console = Console(stderr=True)
    command = [str(Path(sys.executable).parent / "ape"), "compile", *sys.argv[1:]]
    began = time.monotonic()
    if console.is_terminal:
        with console.status("compiling the contracts (solc, via-IR) ...") as status:
            code, output = _run(command, lambda t: status.update(f"compiling the contracts (solc, via-IR): {t:.0f} s"))
    else:
        print("compiling the contracts (solc, via-IR) ...", flush=True)
        notices = iter(range(NOTICE_SECONDS, 10**6, NOTICE_SECONDS))
        due = [next(notices)]

        def notice(elapsed: float) -> None:
            if elapsed >= due[0]:
                print(f"  still compiling: {elapsed:.0f} s", flush=True)
                due[0] = next(notices)

        code, output = _run(command, notice)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    LOG.write_text(output)
    if code != 0:
        sys.stderr.write(output)
        console.print(f"[red]error:[/] `ape compile` failed (exit {code}); its output is above and in {LOG}")
        return code
    print(_summary(output, time.monotonic() - began), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
