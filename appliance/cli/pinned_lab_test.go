//go:build lab

package cli

// commandsGolden pins a lab build's command tree: the shipped one plus the
// stand-alone probe command (probe.go).
const commandsGolden = "commands-lab.golden"
