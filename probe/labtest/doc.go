// Package labtest holds the network-lab integration tests of the probe
// engine: a signed scope over the lab's target zone, the engine run inside
// the lab's scanner namespace, every result compared with the lab's ground
// truth, and the firewall's wire capture used as proof that the engine
// stayed in scope and under its rate cap (docs/lab.md).
//
// The engine runs in a child process started with "ip netns exec", the test
// binary re-executing itself, so every socket it opens is in the lab; an
// in-process engine could open sockets on threads of the host namespace.
package labtest
