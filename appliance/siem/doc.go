// Package siem forwards the appliance's audit events and findings to the
// customer's SIEM: RFC 5424 syslog over UDP (RFC 5426), TCP with octet
// counting (RFC 6587) and TLS (RFC 5425), and signed HTTPS webhooks, with
// OCSF JSON (default) or CEF bodies.
//
// Delivery goes through a durable outbox in the appliance database. An event
// is written to the outbox in the same transaction as its audit entry (see
// Outbox.Enqueue), so an action, its audit entry and its SIEM events commit
// together or not at all. Each destination keeps a cursor into the audit log,
// so entries the audit package appends by itself, checkpoints, and entries
// whose writer forgot Enqueue are taken too, in audit order, exactly once;
// and when a destination's outbox is at its disk budget, further events
// simply wait in the audit log. A Worker delivers each destination's events
// in order, with retries and exponential backoff, and removes them once sent.
// Every destination numbers its events 1, 2, 3, ... without gaps, and the
// number travels in the message (RFC 5424 structured data, webhook header
// and body), so the SIEM can detect a lost or repeated event.
//
// Delivery is at least once: after a broken connection the worker cannot know
// whether the receiver kept the last batch, so it sends it again. Receivers
// deduplicate on (appliance, destination sequence number).
//
// docs/siem.md documents the formats with examples; keep it in step.
package siem
