package lab

import "io"

// StartServices opens every listener of list inside network namespace ns
// (IPv4 and IPv6, the lab's listener behaviours) and serves them from
// goroutines of the calling process; Close stops them. It is how a
// topology other than New's (the product's demo sandbox, for one) puts
// real services into its own zones.
func StartServices(ns string, list []Service) (io.Closer, error) {
	return startServices(ns, list)
}
