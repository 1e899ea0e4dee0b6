"""Prometheus metrics of one switch, served as `GET /metrics` on its HTTP listener.

Theory of operation. Almost everything is read at scrape time from state the switch
keeps anyway (`SwitchCollector.collect`): the call registry (live calls, calls started),
the media engine's `EngineStats` and its channels' RFC 3550 reception state (loss,
jitter), conferences, queues and open recordings. Only the callback client pushes: each
HTTP attempt reports its outcome and latency through `SwitchMetrics.observe_callback`.
Every metric lives in the switch's own `CollectorRegistry`, never the process-wide
default one, so several switches in one process (the tests) do not clash.

`/metrics` is open on the listener, as Prometheus scrapers send no `X-API-Key`; with
`metrics_require_key` (VOXSWITCH_METRICS_REQUIRE_KEY=1) it answers 401 without the key.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from control.callflow.client import OUTCOMES
from control.calls import CallRegistry, Direction
from control.conferences import ConferenceService
from control.queues import QueueService
from control.recordings import RecordingService
from media.channel import Channel
from media.engine import MediaEngine

PATH = "/metrics"
# callback latency buckets (s): callbacks are usually tens of ms, time out at seconds
CALLBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Observed(Protocol):
    """What the collector reads: the parts of `control.switch.Switch` it needs."""

    registry: CallRegistry
    engine: MediaEngine
    conferences: ConferenceService
    queues: QueueService
    recordings: RecordingService


class SwitchMetrics:
    """The registry of one switch and the one metric pushed into it (callbacks)."""

    def __init__(self, switch: Observed) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.callbacks = Counter("voxswitch_callbacks", "Callback HTTP attempts by outcome",
                                 ["outcome"], registry=self.registry)
        for outcome in OUTCOMES:
            self.callbacks.labels(outcome)  # every outcome reads 0 before its first
        self.callback_latency = Histogram(
            "voxswitch_callback_duration_seconds", "Callback HTTP attempts, request to "
            "answer read (or failure)", buckets=CALLBACK_BUCKETS, registry=self.registry)
        self.registry.register(SwitchCollector(switch))

    def observe_callback(self, outcome: str, seconds: float) -> None:
        """`CallbackClient`'s observer: one attempt's outcome and how long it took."""
        self.callbacks.labels(outcome).inc()
        self.callback_latency.observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class SwitchCollector(Collector):
    """Reads the switch's state at scrape time; nothing here runs between scrapes."""

    def __init__(self, switch: Observed) -> None:
        self._switch = switch

    def collect(self) -> Iterator[Metric]:
        yield from self._calls()
        yield from self._engine()
        yield from _reception(self._switch.engine.channels)
        yield from self._services()

    def _calls(self) -> Iterator[Metric]:
        registry = self._switch.registry
        live = GaugeMetricFamily("voxswitch_live_calls", "Calls now live, by direction",
                                 labels=["direction"])
        started = CounterMetricFamily("voxswitch_calls_started",
                                      "Calls started since the switch started, by "
                                      "direction (rate() of it is calls per second)",
                                      labels=["direction"])
        by_direction = {d: 0 for d in Direction}
        for call in registry.live():
            by_direction[call.direction] += 1
        for d in Direction:
            live.add_metric([d.value], by_direction[d])
            started.add_metric([d.value], registry.started[d])
        yield live
        yield started

    def _engine(self) -> Iterator[Metric]:
        stats = self._switch.engine.stats
        for name, doc, value in (
                ("ticks", "Media clock ticks run", stats.ticks),
                ("late_ticks", "Ticks that started late", stats.late_ticks),
                ("skipped_ticks", "Ticks skipped when the clock fell behind",
                 stats.skipped_ticks),
                ("send_errors", "RTP datagrams the socket refused", stats.send_errors)):
            yield CounterMetricFamily(f"voxswitch_engine_{name}", doc, value=value)
        yield GaugeMetricFamily("voxswitch_engine_tick_cost_seconds",
                                "Moving average of the CPU time of one tick",
                                value=stats.tick_cost_us / 1e6)
        yield GaugeMetricFamily("voxswitch_engine_tick_cost_max_seconds",
                                "Greatest CPU time of one tick so far",
                                value=stats.max_tick_cost_us / 1e6)
        yield GaugeMetricFamily("voxswitch_media_channels", "Media channels open",
                                value=len(self._switch.engine.channels))

    def _services(self) -> Iterator[Metric]:
        sw = self._switch
        conferences, participants = sw.conferences.counts()
        queues, queued = sw.queues.counts()
        for name, doc, value in (
                ("conferences", "Live conferences", conferences),
                ("conference_participants", "Participants of live conferences",
                 participants),
                ("queues", "Call queues", queues),
                ("queued_calls", "Calls waiting in a queue", queued),
                ("recordings_open", "Recordings being written", sw.recordings.open_count)):
            yield GaugeMetricFamily(f"voxswitch_{name}", doc, value=value)


def _reception(channels: Iterable[Channel]) -> Iterator[Metric]:
    """Loss and jitter over the live channels' inbound sources (one pass, no copies)."""
    receiving = expected = lost = 0
    jitter_sum = jitter_max = 0.0
    for channel in channels:
        rx = channel.reception
        if rx is None:
            continue
        receiving += 1
        expected += rx.expected
        lost += max(rx.lost, 0)
        jitter = rx.jitter / rx.rate
        jitter_sum += jitter
        jitter_max = max(jitter_max, jitter)
    yield GaugeMetricFamily("voxswitch_rtp_receiving_channels",
                            "Live channels that have received media", value=receiving)
    yield GaugeMetricFamily("voxswitch_rtp_packets_lost",
                            "Packets lost (RFC 3550 A.3) on the live channels, so far",
                            value=lost)
    yield GaugeMetricFamily("voxswitch_rtp_loss_ratio",
                            "Packets lost over packets expected on the live channels",
                            value=lost / expected if expected else 0.0)
    yield GaugeMetricFamily("voxswitch_rtp_jitter_mean_seconds",
                            "Mean interarrival jitter (RFC 3550 A.8) of the live channels",
                            value=jitter_sum / receiving if receiving else 0.0)
    yield GaugeMetricFamily("voxswitch_rtp_jitter_max_seconds",
                            "Greatest interarrival jitter of the live channels",
                            value=jitter_max)


def add_route(app: web.Application, metrics: SwitchMetrics, api_key: str | None) -> None:
    """`GET /metrics` on `app`; with `api_key`, only for requests that carry it."""

    async def get_metrics(request: web.Request) -> web.Response:
        if api_key is not None:
            given = request.headers.get("X-API-Key", "").encode()
            if not given or not hmac.compare_digest(given, api_key.encode()):
                raise web.HTTPUnauthorized(text="X-API-Key required\n")
        return web.Response(body=metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get(PATH, get_metrics)
