package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/appliance/buildinfo"
	"firewalliq/appliance/sensor"
	"firewalliq/probe/safety"
)

// DefaultSensorDir is a sensor host's state directory (credentials and the
// result spool) unless --dir or FIQ_SENSOR_DIR says otherwise.
const DefaultSensorDir = "/var/lib/firewalliq-sensor"

// newSensorCmd builds the sensor host's commands: enrol with a console and
// serve its jobs (docs/fleet.md). The console's sensor management (tokens,
// list, revoke) goes through the HTTP API.
func newSensorCmd(env *Env) *cobra.Command {
	return newGroup("sensor", "Run this host as a remote sensor of a console", newSensorEnrollCmd(env), newSensorRunCmd(env))
}

func sensorDir(cmd *cobra.Command, env *Env) string {
	if f := cmd.Flags().Lookup("dir"); f != nil && f.Changed {
		return f.Value.String()
	}
	if v := env.Getenv("FIQ_SENSOR_DIR"); v != "" {
		return v
	}
	return DefaultSensorDir
}

func newSensorEnrollCmd(env *Env) *cobra.Command {
	var console, token, fp string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "enroll --console URL --token T --cert-sha256 FP",
		Short: "Enrol this host as a sensor with a one-time token",
		Long: "Generates this sensor's NKey (its seed never leaves the host), trades the one-time token for the right to connect,\n" +
			"and stores the credentials with the console's pinned job key and certificate fingerprint in --dir (mode 0600).\n" +
			"The token may also come from FIQ_SENSOR_TOKEN, so it need not appear in the process list.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = env.Getenv("FIQ_SENSOR_TOKEN")
			}
			if console == "" || token == "" || fp == "" {
				return usagef("sensor enroll: --console, --token (or FIQ_SENSOR_TOKEN) and --cert-sha256 are required")
			}
			norm, err := sensor.NormalizeFingerprint(fp)
			if err != nil {
				return &UsageError{Err: err}
			}
			prof, err := safety.Load()
			if err != nil {
				return err
			}
			c, err := sensor.Enroll(cmd.Context(), sensor.EnrollOptions{Console: console, Token: token, CertSHA256: norm,
				Dir: sensorDir(cmd, env), Version: buildinfo.Get().Version, ProfileSHA256: prof.SHA256()})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(env.Stdout).Encode(map[string]string{"sensor_id": c.SensorID, "tenant": c.TenantName,
					"name": c.Name, "vantage": c.Vantage, "nats_url": c.NATSURL, "dir": sensorDir(cmd, env)})
			}
			fmt.Fprintf(env.Stdout, "enrolled sensor %s (%s, vantage %s) of tenant %s\nconsole: %s\ncredentials: %s\n",
				termSafe(c.SensorID), termSafe(c.Name), termSafe(c.Vantage), termSafe(c.TenantName), termSafe(c.NATSURL), termSafe(sensorDir(cmd, env)))
			return nil
		},
	}
	cmd.Flags().StringVar(&console, "console", "", "the console's HTTPS URL (https://console:8443)")
	cmd.Flags().StringVar(&token, "token", "", "one-time enrolment token (or FIQ_SENSOR_TOKEN)")
	cmd.Flags().StringVar(&fp, "cert-sha256", "", "SHA-256 fingerprint of the console certificate (from 'firewalliq init')")
	cmd.Flags().String("dir", "", "state directory (env FIQ_SENSOR_DIR, default "+DefaultSensorDir+")")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newSensorRunCmd(env *Env) *cobra.Command {
	var noRaw bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Serve the console's jobs until stopped",
		Long: "Connects out to the console over TLS pinned at enrolment, runs each job only after verifying it exactly as the\n" +
			"console's own engine does (the pinned job key, this binary's compiled-in safety profile), and sends the results\n" +
			"back from a durable spool in --dir, so none is lost or duplicated when the connection drops. Stops with an error\n" +
			"when the console refuses the credentials (the sensor was revoked).",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, env)
			if err != nil {
				return err
			}
			if err := refuseUnfitBuild("sensor run", cfg.Production, safety.Load); err != nil {
				return err
			}
			a := &sensor.Agent{Dir: sensorDir(cmd, env), Version: buildinfo.Get().Version, NoRaw: noRaw, Now: env.Now,
				Logger: appliance.NewLogger(env.Stderr, cfg.LogLevel)}
			return a.Run(cmd.Context())
		},
	}
	cmd.Flags().String("dir", "", "state directory (env FIQ_SENSOR_DIR, default "+DefaultSensorDir+")")
	cmd.Flags().BoolVar(&noRaw, "no-raw", false, "run without raw sockets (tcp-syn as tcp-connect)")
	return cmd
}
