package probe

import "time"

// rttEstimator is RFC 6298's smoothed round-trip time and variation,
// fed with unambiguous samples (answers to a probe's only attempt). The
// retry timeout is srtt + 4*rttvar, clamped between a floor and the
// configured Timeout, and stays at Timeout until minRTTSamples arrived:
// a scan of a slow network never retries early, a scan of a lab or a LAN
// does not wait a second per attempt for answers that come in a
// millisecond. A DROP still needs every attempt to time out before it is
// reported filtered.
type rttEstimator struct {
	n      int
	srtt   time.Duration
	rttvar time.Duration
}

// minRTTSamples is how many samples the estimate needs before it is used.
const minRTTSamples = 8

func (r *rttEstimator) add(s time.Duration) {
	if s < 0 {
		return
	}
	if r.n == 0 {
		r.srtt, r.rttvar = s, s/2
	} else {
		d := r.srtt - s
		if d < 0 {
			d = -d
		}
		r.rttvar = (3*r.rttvar + d) / 4
		r.srtt = (7*r.srtt + s) / 8
	}
	r.n++
}

// timeout returns the per-attempt timeout.
func (r *rttEstimator) timeout(floor, ceiling time.Duration) time.Duration {
	if r.n < minRTTSamples {
		return ceiling
	}
	return min(max(r.srtt+4*r.rttvar, floor), ceiling)
}
