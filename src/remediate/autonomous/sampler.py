"""The background sampler `remediate serve` runs: a sample of every resource per interval,
stored with retention; matured forecasts are scored after each round.

    sampler = Sampler(settings, store, clock=SystemClock())
    sampler.start()   # a first round at once, then every autonomous.sample_interval_seconds
    sampler.stop()

With `prometheus.url` configured there is nothing to sample (Prometheus keeps the
history); the sampler then only scores matured forecasts.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from remediate.clock import Clock
from remediate.config.models import Settings
from remediate.errors import RemediateError
from remediate.store import Store
from remediate.system.process import ProcessRunner, run_process

log = logging.getLogger("remediate.sampler")
FIRST_ROUND_DELAY_SECONDS = 5.0


@dataclass
class Round:
    at: float
    sampled: int = 0
    dropped: int = 0
    scored: int = 0
    problems: list[str] = field(default_factory=list)


class Sampler:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock,
        runner: ProcessRunner = run_process,
        interval: float | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.runner = runner
        self.interval = interval or settings.autonomous.sample_interval_seconds
        self.rounds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self) -> Round:
        """One round: sample (unless Prometheus has the history), store, prune, score."""
        # Imported here, when the first round runs: not on serve's start-up path.
        from remediate.autonomous import accuracy, samples

        config = self.settings.autonomous
        now = self.clock.now()
        result = Round(now)
        actual = None
        if self.settings.prometheus.url:
            from remediate.autonomous.prometheus import Prometheus

            actual = Prometheus(
                self.settings.prometheus.url, timeout=self.settings.prometheus.timeout_seconds
            ).value_at
        else:
            taken, result.problems = samples.collect(self.settings, self.runner, now=now)
            result.dropped = samples.write(
                self.store, taken, retention_days=config.retention_days, now=now
            )
            result.sampled = len(taken)
        result.scored = len(accuracy.score_matured(self.store, config, now=now, actual=actual))
        self.rounds += 1
        return result

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="remediate-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # The first round waits a moment: at start the server has better things to do
        # with the CPU and the store's write lock than taking samples.
        if self._stop.wait(min(self.interval, FIRST_ROUND_DELAY_SECONDS)):
            return
        while True:
            try:
                outcome = self.sample_once()
                for problem in outcome.problems:
                    log.warning("sampling: %s", problem)
            except RemediateError as error:
                # The store or Prometheus is unreachable: try again next round, no storm.
                log.warning("sampling failed: %s", error.message)
            except Exception:
                log.exception("sampling failed")
            if self._stop.wait(self.interval):
                return

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
