"""The table of `make bench-peers`: medians over runs of the reports
`verlauf bench` wrote, one column per server, and verlauf/peer ratios.

Usage: table.py RESULTS_DIR "SERVERS" USERS RUNS DURATION RATE "VERSIONS" [MAM_MESSAGES MAM_QUERIES MAM_SEED]

The MAM rows come from SERVER.mam, the report of `verlauf bench -mam-fill`,
and SERVER.mam.seed, the time bench-peers.sh took to seed the archive.
"""

import glob
import os
import re
import statistics
import sys

UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text):
    """Seconds in a Go time.Duration string such as 1m2.5s or 457µs."""
    parts = re.findall(r"([\d.]+)(ns|us|µs|ms|s|m|h)", text)
    return sum(float(n) * UNITS[u] for n, u in parts)


def parse(path):
    """The figures of one report, or {} if the run produced none."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return {}
    r = {}
    if m := re.search(r"users (\d+), login errors (\d+)", text):
        r["login_errors"] = int(m[2])
    if m := re.search(r"^logins/s\s+([\d.]+)", text, re.M):
        r["logins"] = float(m[1])
    if m := re.search(r"^first logins/s\s+([\d.]+)", text, re.M):
        r["first_logins"] = float(m[1])
    if m := re.search(r"sent (\d+), delivered (\d+), lost (-?\d+), duplicated (\d+), errors (\d+)", text):
        r["sent"], r["delivered"], r["lost"], r["dups"], r["errors"] = map(int, m.groups())
    if m := re.search(r"^delivered msg/s\s+([\d.]+)", text, re.M):
        r["msgs"] = float(m[1])
    if m := re.search(r"^latency\s+p50 (\S+), p99 (\S+),", text, re.M):
        r["p50"], r["p99"] = go_duration(m[1]) * 1000, go_duration(m[2]) * 1000
    if m := re.search(r"([-\d.]+) KiB per user", text):
        r["rss"] = float(m[1])
    if m := re.search(r"([\d.]+)s per 1000 messages", text):
        r["cpu"] = float(m[1])
    if m := re.search(r"holds (-?\d+) messages, sent\+received in this run (\d+)(?: \((.*)\))?", text):
        r["archived"], r["expected"], r["archive_note"] = int(m[1]), int(m[2]), m[3] or ""
    # The MAM run.
    if m := re.search(r"^mam seed\s+(\d+) messages in ([\d.]+)s: (.*)$", text, re.M):
        r["mam_seeded"], r["mam_seed_s"], r["mam_seed_how"] = int(m[1]), float(m[2]), m[3]
    if m := re.search(r"^mam fill\s+.*, (\d+) requested: sent (\d+), delivered (\d+), lost (-?\d+), duplicated (\d+), errors (\d+)",
                      text, re.M):
        (r["mam_requested"], r["mam_sent"], r["mam_delivered"], r["mam_lost"], r["mam_dups"],
         r["mam_errors"]) = map(int, m.groups())
    if m := re.search(r"^mam fill rate\s+([\d.]+) msg/s over ([\d.]+)s(.*)$", text, re.M):
        r["mam_rate"], r["mam_fill_s"] = float(m[1]), float(m[2])
        r["mam_stopped"] = "stopped" in m[3]
    if m := re.search(r"^mam archive\s+\S+ holds (-?\d+) messages, (-?\d+) before the fill, "
                      r"delivered in the fill (\d+), missing (-?\d+)(?: \((.*)\))?", text, re.M):
        r["mam_held"], r["mam_before"], r["mam_expected"], r["mam_missing"] = map(int, m.groups()[:4])
        r["mam_note"] = m[5] or ""
    if m := re.search(r"^mam server\s+([\d.]+) MiB RSS before the fill, ([\d.]+) MiB after", text, re.M):
        r["mam_rss"] = float(m[2])
    for kind, key in (("newest page", "newest"), ("middle page", "middle"), ("with query", "with")):
        if m := re.search(rf"^mam {kind}\s+p50 (\S+), p99 (\S+), max \S+; (\d+) queries, ([\d-]+) results per page, "
                          r"errors (\d+)(?: \((.*)\))?", text, re.M):
            n = int(m[3])
            if n > 0:
                r[f"mam_{key}_p50"] = go_duration(m[1]) * 1000
                r[f"mam_{key}_p99"] = go_duration(m[2]) * 1000
            r[f"mam_{key}_n"], r[f"mam_{key}_results"] = n, m[4]
            r[f"mam_{key}_errors"], r[f"mam_{key}_note"] = int(m[5]), m[6] or ""
    if m := re.search(r"^mam queries\s+(.*)$", text, re.M):
        r["mam_query_note"] = m[1]
    return r


def ratio(v, pv):
    """v/pv with two decimals, or two significant digits below 0.1 (a
    MAM page at 7 ms against one at 3 s is 0.0021, not 0.00)."""
    if v is None or not pv:
        return "–"
    r = v / pv
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    results, servers, users, runs, duration, rate, versions = sys.argv[1:8]
    mam_messages, mam_queries, mam_seed = (sys.argv[8:11] + ["0", "0", "0"])[:3]
    servers = servers.split()
    versions = dict(v.split("=", 1) for v in versions.split())
    names = {"verlauf": "verlauf", "prosody": "Prosody", "ejabberd": "ejabberd"}
    label = {s: f"{names.get(s, s)} {versions.get(s, '')}".strip() for s in servers}

    sat, rate_runs, mam = {}, {}, {}
    for s in servers:
        sat[s] = [parse(p) for p in sorted(glob.glob(os.path.join(results, f"{s}.*.sat")))]
        rate_runs[s] = [parse(p) for p in sorted(glob.glob(os.path.join(results, f"{s}.*.rate")))]
        mam[s] = [{**parse(p), **parse(p + ".seed")}
                  for p in sorted(glob.glob(os.path.join(results, f"{s}.mam")))]
    with_mam = int(mam_messages) + int(mam_seed) > 0

    def med(s, key, source):
        return median([r.get(key) for r in source[s]])

    # RUNS=0 runs only the MAM run: no chat rows then.
    chat = int(runs) > 0
    # (title, key, source, format, higher is better)
    rows = [] if not chat else [
        ("logins/s (client keys cached)", "logins", sat, "{:.0f}", True),
        ("logins/s, first login (tool runs PBKDF2)", "first_logins", sat, "{:.0f}", True),
        ("delivered msg/s at saturation", "msgs", sat, "{:.0f}", True),
        (f"p50 latency at {rate} msg/s (ms)", "p50", rate_runs, "{:.2f}", False),
        (f"p99 latency at {rate} msg/s (ms)", "p99", rate_runs, "{:.2f}", False),
        ("RSS per logged-in user, idle (KiB)", "rss", sat, "{:.1f}", False),
        ("server CPU s per 1000 msgs (saturation)", "cpu", sat, "{:.3f}", False),
    ]
    if with_mam:
        rows += [
            (f"MAM seed of {int(mam_seed):,} messages (s)", "mam_seed_s", mam, "{:.0f}", False),
            ("MAM fill through the protocol (msg/s)", "mam_rate", mam, "{:.0f}", True),
            ("MAM newest page of 50, p50 (ms)", "mam_newest_p50", mam, "{:.2f}", False),
            ("MAM newest page of 50, p99 (ms)", "mam_newest_p99", mam, "{:.2f}", False),
            ("MAM middle page of 50, p50 (ms)", "mam_middle_p50", mam, "{:.2f}", False),
            ("MAM middle page of 50, p99 (ms)", "mam_middle_p99", mam, "{:.2f}", False),
            ("MAM with query, page of 50, p50 (ms)", "mam_with_p50", mam, "{:.2f}", False),
            ("MAM with query, page of 50, p99 (ms)", "mam_with_p99", mam, "{:.2f}", False),
            ("server RSS after the MAM fill (MiB)", "mam_rss", mam, "{:.0f}", False),
        ]
    peers = [s for s in servers if s != "verlauf"]
    head = ["figure"] + [label[s] for s in servers]
    if "verlauf" in servers:
        head += [f"verlauf/{names.get(p, p)}" for p in peers]
    table = []

    def add(line):
        """Appends a row, padded to the header's width."""
        table.append(line + [""] * (len(head) - len(line)))

    for title, key, source, fmt, higher in rows:
        vals = {s: med(s, key, source) for s in servers}
        line = [title + (" ↑" if higher else " ↓")]
        line += [fmt.format(vals[s]) if vals[s] is not None else "failed" for s in servers]
        if "verlauf" in servers:
            for p in peers:
                v, pv = vals["verlauf"], vals[p]
                line.append(ratio(v, pv))
        table.append(line)

    if chat:
        # Correctness, summed over every measurement: these must be zero.
        def total(s, key):
            return sum(r.get(key, 0) for r in sat[s] + rate_runs[s])

        line = ["lost / duplicated / errors (all runs)"]
        line += [f"{total(s, 'lost')} / {total(s, 'dups')} / {total(s, 'errors')}" for s in servers]
        add(line)
        line = ["login errors (all runs)"] + [str(total(s, "login_errors")) for s in servers]
        add(line)
        line = ["messages checked (all runs)"] + [str(total(s, "sent")) for s in servers]
        add(line)

        # History on: one user's archive after the run on a fresh server.
        line = ["archive of one user: held / sent+received"]
        for s in servers:
            cells = []
            for r in rate_runs[s]:
                if "archived" not in r:
                    continue
                cell = f"{r['archived']}/{r['expected']}" if r["archived"] >= 0 else "?"
                if r["archived"] == 0:
                    cell += " (archives nothing)"
                cells.append(cell)
            notes = {r.get("archive_note") for r in rate_runs[s] if r.get("archive_note")}
            cells += sorted(notes)
            line.append(", ".join(cells) or "–")
        add(line)

    if with_mam:
        # The MAM archive: what the fill delivered and what the archive
        # holds; missing must be zero, and a fill stopped by its timeout
        # says how far it got.
        line = ["MAM archive: held / delivered (missing)"]
        for s in servers:
            cells = []
            for r in mam[s]:
                if "mam_held" not in r:
                    continue
                cell = f"{r['mam_held']}/{r['mam_expected']} ({r['mam_missing']})" if r["mam_held"] >= 0 else "?"
                if r.get("mam_stopped"):
                    cell += f" of {r['mam_requested']}: fill timeout after {r['mam_fill_s']:.0f}s"
                if r.get("mam_note"):
                    cell += f" {r['mam_note']}"
                cells.append(cell)
            line.append(", ".join(cells) or "failed")
        add(line)
        line = ["MAM fill lost / duplicated / errors"]
        line += [" ".join(f"{r.get('mam_lost', '?')} / {r.get('mam_dups', '?')} / {r.get('mam_errors', '?')}"
                          for r in mam[s]) or "–" for s in servers]
        add(line)
        line = ["MAM queries: answered (errors) newest / middle / with"]
        for s in servers:
            cells = []
            for r in mam[s]:
                cells.append(" / ".join(f"{r.get(f'mam_{k}_n', 0)} ({r.get(f'mam_{k}_errors', 0)})"
                                        for k in ("newest", "middle", "with")))
                notes = [r.get(f"mam_{k}_note") for k in ("newest", "middle", "with")] + [r.get("mam_query_note")]
                cells += sorted({n for n in notes if n})
            line.append(", ".join(cells) or "–")
        add(line)

    widths = [max(len(str(row[i])) for row in [head] + table) for i in range(len(head))]
    out = [
        f"bench-peers: {users} users, medians of {runs} runs, chat {duration} per measurement; "
        f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
        "server pinned to one core, load tool to the other",
        "",
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
        "| " + " | ".join("-" * w for w in widths) + " |",
    ]
    out += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |" for row in table]
    out += [
        "",
        "↑ higher is better, ↓ lower is better; ratios are verlauf/peer.",
        "All: STARTTLS required, SCRAM-SHA-256 (4096 iterations), in-band registration",
        "without throttling, warnings-only logging, history on for every user:",
        "verlauf [archive] default = \"always\" (event store on disk, fsync);",
        "Prosody mod_mam default_archive_policy = true, archive store in MEMORY",
        "(its SQLite and flat-file stores collapse under this load on this machine);",
        "ejabberd mod_mam default: always, in mnesia on disk.",
    ]
    if chat:
        out += [
            "Each run: a fresh server registers the users and takes the fixed-rate load",
            "(latency, archive check); it is then restarted on the same data for logins,",
            "RSS and saturation. logins/s: every user logs in once (warm-up), leaves and",
            "logs in again; the second pass reuses the SCRAM keys as real clients do.",
            "RSS per user: (RSS with all users online and presence sent - RSS of the",
            "freshly restarted server) / users.",
        ]
    if with_mam:
        out += [
            "MAM: one run per server on a fresh instance. One user's archive is first seeded with",
            f"{int(mam_seed):,} messages (a year of chat with the partners) through each server's own",
            "import path: " + "; ".join(f"{names.get(s, s)}: {r['mam_seed_how']}"
                                        for s in servers for r in mam[s] if r.get("mam_seed_how")) + ".",
            "ejabberd's default mnesia archive cannot take 1 M messages for one user (a dets bag",
            "per user, ~5 msg/s at 14 000), so in this run its archive is in PostgreSQL on the",
            "server's core (PostgreSQL's CPU and memory are not in ejabberd's figures); Prosody's",
            "is in memory (storage_archive_item_limit raised from 1 000).",
            f"Then {int(mam_messages):,} messages through the protocol (chatting with partners, each",
            "checked as delivered, the archive count checked against the deliveries), then",
            f"{mam_queries} queries of each kind, interleaved; p50/p99 over those queries, from the IQ",
            "sent to its <fin/>. newest page: RSM <before/> max 50; middle page: RSM",
            "<before>id</before> max 50, id the first message at or after the time halfway between",
            "the oldest and the newest; with: one partner, <before/> max 50. A server that runs",
            "out of MAM_QUERY_TIME answers fewer queries (the queries row says how many).",
        ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
