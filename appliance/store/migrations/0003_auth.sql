-- 0003_auth: identity and access (users' TOTP state, sessions, tokens, approvals, support tickets).
-- Reserved; filled by its issue before it ships.
SELECT 1;
