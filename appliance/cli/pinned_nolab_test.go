//go:build !lab

package cli

// commandsGolden pins the shipped build's command tree.
const commandsGolden = "commands.golden"
