package probe

import (
	"maps"
	"time"
)

// Summary describes one run of a scan (summary.json).
type Summary struct {
	ScanID   string    `json:"scan_id"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// WallSeconds is Finished - Started.
	WallSeconds float64 `json:"wall_seconds"`
	// Transport is "raw" (CAP_NET_RAW: tcp-syn, udp and icmp-echo through
	// raw sockets, replies through a packet socket) or "connect".
	Transport string `json:"transport"`
	// RatePPS is the rate the pacer enforced: min(profile, scope,
	// requested); CapPPS is min(profile, scope).
	RatePPS     int `json:"rate_pps"`
	CapPPS      int `json:"cap_pps"`
	PerHostPPS  int `json:"per_host_pps"`
	WindowLimit int `json:"window_limit"`
	// PacketsSent counts packets handed to the kernel (for connect-based
	// probes, SYNs), retries included, and SYNs the kernel sent again.
	PacketsSent uint64 `json:"packets_sent"`
	// KernelResent counts SYNs of connect-based probes that the kernel
	// retransmitted because the process closed the socket too late (a
	// starved machine), as the packet tap saw them: 0 without a tap, and
	// without evidence off loopback (the tap then drops our outgoing
	// packets).
	KernelResent uint64 `json:"kernel_resent,omitempty"`
	// MeasuredPPS is PacketsSent divided by the time from the first to
	// the last send: the rate the pacer achieved.
	MeasuredPPS float64 `json:"measured_pps"`
	// WallPPS is PacketsSent divided by WallSeconds, which includes the
	// final wait for late replies.
	WallPPS float64 `json:"wall_pps"`
	// Worst100ms is the most packets sent in any 100 ms window.
	Worst100ms int `json:"worst_100ms_window"`
	// Sent is packets per bucket of seconds from the first send (at most
	// SeriesBuckets buckets): the run's send rate over time.
	Sent    *SendSeries `json:"sent,omitempty"`
	Retries uint64      `json:"retries"`
	// LossSeen tells whether a probe was answered only on a retry; until
	// then raw probes got one retry fewer than configured.
	LossSeen bool `json:"loss_seen"`
	// TimeoutMs is the adaptive per-attempt timeout at the end of the run
	// (raw probes), and SRTTms the smoothed round-trip time behind it.
	TimeoutMs float64 `json:"timeout_ms"`
	SRTTms    float64 `json:"srtt_ms"`
	// RefusedPackets were stopped by the send path's scope check.
	RefusedPackets uint64   `json:"refused_packets"`
	RefusedSample  []string `json:"refused_sample,omitempty"`
	// RefusedTargets were outside the scope and never planned.
	RefusedTargets   uint64 `json:"refused_targets"`
	UnmatchedReplies uint64 `json:"unmatched_replies"`
	DuplicateReplies uint64 `json:"duplicate_replies"`
	MalformedReplies uint64 `json:"malformed_replies"`
	// TapLagged counts "no answer" verdicts given while the reply reader
	// was more than 2 s behind (should be 0; see docs/probe.md).
	TapLagged       uint64         `json:"tap_lagged,omitempty"`
	Probes          uint64         `json:"probes"`
	States          map[State]int  `json:"states"`
	EvidencePackets uint64         `json:"evidence_packets"`
	ResumedAtBatch  int            `json:"resumed_at_batch,omitempty"`
	Kinds           []Kind         `json:"kinds"`
	Extra           map[string]any `json:"extra,omitempty"`
}

// summary builds the run's summary. States counts this run's results;
// Dir.Finish replaces it with the counts over every run of the scan.
func (e *Engine) summary(start time.Time) Summary {
	end := e.cfg.Now()
	e.sendMu.Lock()
	worst, series := e.meter.Worst(), e.meter.Series()
	first, last := e.meter.first, e.meter.last
	refused := append([]string(nil), e.refusedList...)
	e.sendMu.Unlock()
	s := Summary{
		ScanID: e.cfg.ScanID, Started: start.UTC(), Finished: end.UTC(),
		WallSeconds: end.Sub(start).Seconds(),
		Transport:   "connect",
		RatePPS:     e.rate, CapPPS: e.cfg.Limits.Cap(), PerHostPPS: e.cfg.Limits.PerHost,
		WindowLimit: WindowLimit(e.rate),
		PacketsSent: e.sent.Load(), KernelResent: e.resent.Load(), Worst100ms: worst, Sent: series, Retries: e.retries.Load(),
		RefusedPackets: e.refused.Load(), RefusedSample: refused, RefusedTargets: e.refusedTargets.Load(),
		UnmatchedReplies: e.unmatched.Load(), DuplicateReplies: e.duplicates.Load(), MalformedReplies: e.malformed.Load(), TapLagged: e.tapLagged.Load(),
		Probes: e.done.Load(), States: maps.Clone(e.states), ResumedAtBatch: e.cfg.ResumeBatch,
		Kinds: e.kinds,
	}
	if e.raw {
		s.Transport = "raw"
	}
	s.LossSeen = e.lossSeen.Load()
	e.mu.Lock()
	s.TimeoutMs = float64(e.rtt.timeout(e.cfg.MinTimeout, e.cfg.Timeout).Microseconds()) / 1000
	s.SRTTms = float64(e.rtt.srtt.Microseconds()) / 1000
	e.mu.Unlock()
	if span := last.Sub(first).Seconds(); s.PacketsSent > 1 && span > 0 {
		s.MeasuredPPS = float64(s.PacketsSent-1) / span
	}
	if s.WallSeconds > 0 {
		s.WallPPS = float64(s.PacketsSent) / s.WallSeconds
	}
	if e.cfg.Evidence != nil {
		s.EvidencePackets = e.cfg.Evidence.Packets()
	}
	return s
}
