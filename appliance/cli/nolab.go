//go:build !lab

package cli

import "github.com/spf13/cobra"

// labCommands is empty in the shipped build: it has no scan path outside
// the scan service (docs/scans.md). The stand-alone probe command exists
// only in a lab build (go build -tags lab, probe.go).
func labCommands(*Env) []*cobra.Command { return nil }
