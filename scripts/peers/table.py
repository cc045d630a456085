"""The table of `make bench-peers`: medians over runs of the reports
`verlauf bench` wrote, one column per server, and verlauf/peer ratios.

Usage: table.py RESULTS_DIR "SERVERS" USERS RUNS DURATION RATE "VERSIONS"
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
    return r


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    results, servers, users, runs, duration, rate, versions = sys.argv[1:8]
    servers = servers.split()
    versions = dict(v.split("=", 1) for v in versions.split())
    names = {"verlauf": "verlauf", "prosody": "Prosody", "ejabberd": "ejabberd"}
    label = {s: f"{names.get(s, s)} {versions.get(s, '')}".strip() for s in servers}

    sat, rate_runs = {}, {}
    for s in servers:
        sat[s] = [parse(p) for p in sorted(glob.glob(os.path.join(results, f"{s}.*.sat")))]
        rate_runs[s] = [parse(p) for p in sorted(glob.glob(os.path.join(results, f"{s}.*.rate")))]

    def med(s, key, source):
        return median([r.get(key) for r in source[s]])

    # (title, key, source, format, higher is better)
    rows = [
        ("logins/s (client keys cached)", "logins", sat, "{:.0f}", True),
        ("logins/s, first login (tool runs PBKDF2)", "first_logins", sat, "{:.0f}", True),
        ("delivered msg/s at saturation", "msgs", sat, "{:.0f}", True),
        (f"p50 latency at {rate} msg/s (ms)", "p50", rate_runs, "{:.2f}", False),
        (f"p99 latency at {rate} msg/s (ms)", "p99", rate_runs, "{:.2f}", False),
        ("RSS per logged-in user, idle (KiB)", "rss", sat, "{:.1f}", False),
        ("server CPU s per 1000 msgs (saturation)", "cpu", sat, "{:.3f}", False),
    ]
    peers = [s for s in servers if s != "verlauf"]
    head = ["figure"] + [label[s] for s in servers]
    if "verlauf" in servers:
        head += [f"verlauf/{names.get(p, p)}" for p in peers]
    table = []
    for title, key, source, fmt, higher in rows:
        vals = {s: med(s, key, source) for s in servers}
        line = [title + (" ↑" if higher else " ↓")]
        line += [fmt.format(vals[s]) if vals[s] is not None else "failed" for s in servers]
        if "verlauf" in servers:
            for p in peers:
                v, pv = vals["verlauf"], vals[p]
                line.append(f"{v / pv:.2f}" if v is not None and pv else "–")
        table.append(line)

    # Correctness, summed over every measurement: these must be zero.
    def total(s, key):
        return sum(r.get(key, 0) for r in sat[s] + rate_runs[s])

    line = ["lost / duplicated / errors (all runs)"]
    line += [f"{total(s, 'lost')} / {total(s, 'dups')} / {total(s, 'errors')}" for s in servers]
    table.append(line + [""] * (len(head) - len(line)))
    line = ["login errors (all runs)"] + [str(total(s, "login_errors")) for s in servers]
    table.append(line + [""] * (len(head) - len(line)))
    line = ["messages checked (all runs)"] + [str(total(s, "sent")) for s in servers]
    table.append(line + [""] * (len(head) - len(line)))

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
    table.append(line + [""] * (len(head) - len(line)))

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
        "Each run: a fresh server registers the users and takes the fixed-rate load",
        "(latency, archive check); it is then restarted on the same data for logins,",
        "RSS and saturation. logins/s: every user logs in once (warm-up), leaves and",
        "logs in again; the second pass reuses the SCRAM keys as real clients do.",
        "RSS per user: (RSS with all users online and presence sent - RSS of the",
        "freshly restarted server) / users.",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
