-- 0004_siem: SIEM destinations and the durable outbox.
-- Reserved; filled by its issue before it ships.
SELECT 1;
