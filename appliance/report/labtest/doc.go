// Package labtest holds the network-lab test of the compliance report's
// whole path: a firewall with a deliberate mistake (a port the policy says
// must be denied is forwarded), a scan through the scan service from the
// lab's scanner namespace, the evaluation against the policy, and a signed
// report that verifies offline with appliance/report/verify, fails when
// any byte changes, and shows the mistake as an exposure finding in its
// JSON, HTML and PDF (docs/report.md).
//
// As in appliance/scan/labtest, the appliance runs in a child process
// started with "ip netns exec" in the scanner namespace (the test binary
// re-executing one test); the parent builds the lab and judges the files
// the child wrote. The test needs root and skips with a message without
// it.
package labtest
