// Package probe is the probe engine: it plans probes from a signed scope,
// paces them under the compiled-in safety profile, checks every packet's
// destination against the scope again on the send path, classifies replies
// and streams results and pcapng evidence.
//
// The engine stands alone: it imports nothing from appliance, ui, vault or
// audit, so it can run as a separate worker.
package probe
