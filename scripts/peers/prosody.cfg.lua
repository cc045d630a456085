-- Prosody for `make bench-peers`: a throwaway instance on loopback.
-- @VARS@ are filled in by scripts/bench-peers.sh.
daemonize = false
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
log = { warn = "@DIR@/prosody.log" }

-- Only what the load touches, plus history, carbons and ping as a real
-- deployment has them; no s2s, no HTTP, no rate limits (mod_limits off).
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "carbons"; "ping";
	"register"; "mam"; "posix"; "bench_mam_seed";
}
-- The MAM run's archive is seeded through mod_bench_mam_seed (copied here
-- by bench-peers.sh); without the seed file it does nothing.
plugin_paths = { "@DIR@" }
bench_mam_seed = "@DIR@/mam-seed.tsv"
modules_disabled = { "s2s" }

c2s_interfaces = { "127.0.0.1" }
c2s_ports = { @PORT@ }
c2s_direct_tls_ports = { }
s2s_ports = { }
component_ports = { }
c2s_require_encryption = true
-- The accept queue Go gives verlauf (somaxconn); Prosody's default is 128.
network_settings = { tcp_backlog = 4096 }
certificates = "@DIR@"
ssl = { certificate = "@DIR@/localhost.crt"; key = "@DIR@/localhost.key" }

-- SCRAM-SHA-256 (0.12 stores verifiers for one hash; SHA-1 by default).
authentication = "internal_hashed"
password_hash = "SHA-256"

-- In-band registration for the load users, without throttling.
allow_registration = true
min_seconds_between_registrations = nil
registration_throttle_max = nil

-- History on for everyone. The archive lives in memory: Prosody's durable
-- stores (SQLite, flat files) collapse under this load on this machine.
default_archive_policy = true
archive_expires_after = "never"
storage = { archive = "memory" }
-- The memory store keeps 1 000 messages per user by default and drops the
-- oldest beyond that; the MAM run fills one archive with up to 1 M.
storage_archive_item_limit = 100000000

VirtualHost "localhost"
