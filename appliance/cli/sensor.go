package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/appliance/buildinfo"
	"firewalliq/appliance/sensor"
	"firewalliq/probe/safety"
)

// DefaultSensorDir is a sensor host's state directory (credentials and the
// result spool) unless --dir or FIQ_SENSOR_DIR says otherwise.
const DefaultSensorDir = "/var/lib/firewalliq-sensor"

// newSensorCmd builds the sensor commands (docs/fleet.md): on a sensor
// host, enrol with a console and serve its jobs; on the console, through
// the HTTP API, enrolment tokens, the sensor list, one sensor, revocation.
func newSensorCmd(env *Env, r *remote) *cobra.Command {
	return newGroup("sensor", "Remote sensors: enrol and run this host as one; manage a console's (through the API)",
		newSensorEnrollCmd(env), newSensorRunCmd(env),
		newGroup("token", "Sensor enrolment tokens (through the API)", newSensorTokenCreateCmd(r)),
		listCmd(r, "list [--tenant ID] [--json]", "List the tenant's sensors and their state", "/sensors", true, sensorCols, nil),
		showCmd(r, "sensor show", "show SENSOR_ID [--tenant ID] [--json]", "Show one sensor: state, connected, last seen, version, profile hash, vantage", "/sensors/%s"),
		actionCmd(r, "revoke SENSOR_ID [--tenant ID]", "Revoke a sensor: its connections close and its credentials are refused (step-up)",
			http.MethodPost, "/sensors/%s/revoke", nil, "revoked %s", true),
	)
}

var sensorCols = []column{{"ID", "id"}, {"NAME", "name"}, {"VANTAGE", "vantage"}, {"STATE", "state"}, {"CONNECTED", "connected"},
	{"LAST SEEN", "last_seen"}, {"SILENT", "silent"}, {"VERSION", "version"}}

// newSensorTokenCreateCmd: firewalliq sensor token create --tenant T --name N --vantage LABEL.
func newSensorTokenCreateCmd(r *remote) *cobra.Command {
	var (
		tenant, name, vantage string
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --vantage LABEL [--tenant ID] [--json]",
		Short: "Create a one-time enrolment token for a sensor; prints it once (admins, step-up)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(name) == "" || strings.TrimSpace(vantage) == "" {
				return usagef("sensor token create: --name and --vantage are required")
			}
			return send(r, cmd, "sensor token create", http.MethodPost, "/sensors/tokens", tenantQuery(tenant), map[string]string{"name": name, "vantage": vantage}, func(out map[string]any) error {
				if asJSON {
					return writeJSONLine(r.env.Stdout, out)
				}
				fmt.Fprintf(r.env.Stdout, "sensor token %s (sensor %s, vantage %s, expires %s)\n"+
					"secret (shown once; on the sensor host: firewalliq sensor enroll --token ...): %s\n",
					cell(out["id"]), cell(out["name"]), cell(out["vantage"]), cell(out["expires_at"]), cell(out["secret"]))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the sensor's name, unique among the tenant's active sensors (required)")
	f.StringVar(&vantage, "vantage", "", "the vantage label its scans are attributed to (required)")
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
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
