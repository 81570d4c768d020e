// Package labtest holds the network-lab integration test of the sensor
// fleet (docs/fleet.md, issue 19): a console and two sensors in two zones
// of the lab, one outside the firewall and one in an internal segment,
// each scanning the same target zone through the console.
//
// The console (an appliance from apptest) runs in the test process; its
// embedded NATS listener and its enrolment endpoint are opened inside the
// lab's management namespace (probe/lab.AddManagement, Service.ListenWithin),
// which each sensor's namespace reaches over a veth link of its own. The
// sensors are separate processes: the test binary re-executed with "ip
// netns exec" in the sensor's namespace, running the real CLI commands
// "firewalliq sensor enroll" and "firewalliq sensor run" (cli.Run). The
// test needs root and skips with a message without it.
package labtest
