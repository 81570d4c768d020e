// Package lab builds a disposable network lab out of Linux network
// namespaces so the probe engine, and the peers it is compared with, can be
// run against real kernels, a real nftables firewall and real listeners
// without a single packet leaving the machine.
//
// The topology (see docs/lab.md) is a scanner namespace, a routing firewall
// namespace running nftables with DROP, TCP-reset REJECT and ICMP REJECT
// rules, a target namespace answering for a whole /24 and /120 (AnyIP local
// routes) with TCP and UDP listeners, and an "outside" namespace that is
// reachable but never in scope, so a capture can prove that nothing was sent
// there. All addresses come from the benchmark range 198.18.0.0/15 and the
// ULA prefix fd00:f1a9::/48 and exist only inside the lab's namespaces; no
// interface or route is ever added to the host's root namespace.
//
// The ground truth is data: the same rule table renders the nftables
// ruleset and answers Expect(addr, proto, port), so a test can compare every
// result row with what the lab is known to do.
package lab
