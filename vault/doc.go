// Package vault stores scan evidence: a MinIO/S3 backend with compliance-mode
// object lock and server-side encryption, a local spool so nothing is lost
// while the bucket is unreachable, and short-lived pre-signed exports.
package vault
