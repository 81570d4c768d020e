package scope

import (
	"fmt"
	"iter"
	"net/netip"

	"firewalliq/probe/safety"
)

// TargetSet is one scan's expansion: the union of its checked targets,
// compiled like a scope (sorted disjoint ranges), every address in scope.
// Only Expand and ExpandAll make one.
type TargetSet struct {
	r *ranges
}

// Expand compiles checked targets (from Resolve) into the set a scan
// probes, counting every address once however the targets overlap. Every
// target is checked against the scope again (a Target can be built by
// hand), and the set's size is held to the profile's MaxTargets: a scan
// that would expand to more is refused with ErrExceedsProfile, never
// truncated.
func (s *Scope) Expand(targets []Target, p safety.Profile) (*TargetSet, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: no targets", ErrBadTarget)
	}
	var v4, v6 []interval
	add := func(pf netip.Prefix) {
		if pf.Addr().Is4() {
			v4 = append(v4, prefixInterval(pf))
		} else {
			v6 = append(v6, prefixInterval(pf))
		}
	}
	for _, t := range targets {
		if t.Prefix.IsValid() {
			if len(t.Addrs) > 0 {
				return nil, fmt.Errorf("%w %q: both a prefix and addresses", ErrBadTarget, t.Input)
			}
			pf, err := ParseTargetPrefix(t.Prefix.String())
			if err != nil {
				return nil, err
			}
			if err := s.CheckPrefix(pf); err != nil {
				return nil, fmt.Errorf("target %q: %w", t.Input, err)
			}
			add(pf)
			continue
		}
		if len(t.Addrs) == 0 {
			return nil, fmt.Errorf("%w %q: no address", ErrBadTarget, t.Input)
		}
		for _, a := range t.Addrs {
			if why, bad := Special(a); bad {
				return nil, fmt.Errorf("%w %q: %s", ErrBadTarget, t.Input, why)
			}
			if err := s.Check(a); err != nil {
				return nil, fmt.Errorf("target %q: %w", t.Input, err)
			}
			a = a.Unmap()
			add(netip.PrefixFrom(a, a.BitLen()))
		}
	}
	r := &ranges{v4: merge(v4), v6: merge(v6)}
	r.off4, r.size = offsets(r.v4, 0)
	r.off6, r.size = offsets(r.v6, r.size)
	if err := fitsTargets(r.size, p); err != nil {
		return nil, err
	}
	return &TargetSet{r: r}, nil
}

// ExpandAll is the default expansion: the whole scope, when it fits the
// profile's MaxTargets (ErrExceedsProfile otherwise; name a subset then).
func (s *Scope) ExpandAll(p safety.Profile) (*TargetSet, error) {
	if err := fitsTargets(s.r.size, p); err != nil {
		return nil, fmt.Errorf("%w; name the targets to scan", err)
	}
	return &TargetSet{r: s.r}, nil
}

func fitsTargets(n uint64, p safety.Profile) error {
	if n > uint64(max(p.MaxTargets, 0)) {
		return fmt.Errorf("%w: the scan expands to %s addresses, the profile %s allows %d per scan", ErrExceedsProfile, sizeString(n), p.ID, p.MaxTargets)
	}
	return nil
}

// Size returns the number of addresses in the set.
func (t *TargetSet) Size() uint64 { return t.r.size }

// Contains reports whether a is in the set (see Scope.Contains).
func (t *TargetSet) Contains(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	return t.r.contains(a.Unmap())
}

// Targets yields every address of the set once, in the pseudo-random
// order chosen by seed (see Scope.Targets).
func (t *TargetSet) Targets(seed uint64) iter.Seq[netip.Addr] { return t.r.permuted(seed) }
