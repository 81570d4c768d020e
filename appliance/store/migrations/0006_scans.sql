-- 0006_scans: scan requests, jobs and results.
-- Reserved; filled by its issue before it ships.
SELECT 1;
