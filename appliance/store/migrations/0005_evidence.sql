-- 0005_evidence: evidence objects recorded from the vault.
-- Reserved; filled by its issue before it ships.
SELECT 1;
