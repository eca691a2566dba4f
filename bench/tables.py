"""Markdown tables from a bench/run results file, for docs/BENCHMARKS.md.

    /usr/bin/python3 bench/tables.py [bench/out/results.txt]

Prints the machine, the /me table, the login table, memory and the ratios
against the targets of issue 6, ready to paste.
"""

import sys

CONNS_ME = (1, 8, 64)
CONNS_LOGIN = (1, 2, 8)


def load(path):
    values = {}
    with open(path) as f:
        for line in f:
            name, sep, value = line.rstrip("\n").partition(": ")
            if sep:
                values[name] = value
    return values


def num(v, name, fmt="%.0f"):
    try:
        return fmt % float(v[name])
    except (KeyError, ValueError):
        return "n/a"


def main():
    v = load(sys.argv[1] if len(sys.argv) > 1 else "bench/out/results.txt")
    out = []
    out.append("| | |")
    out.append("|---|---|")
    for k, label in (("date", "run"), ("mode", "mode"), ("commit", "keygate commit"),
                     ("machine_nproc", "cores (nproc)"), ("machine_cpu", "CPU"),
                     ("machine_mem_mib", "memory (MiB)"), ("machine_kernel", "kernel"),
                     ("versions", "software"), ("workers", "workers (keygate, fcgi_hello)"),
                     ("rounds", "rounds"),
                     ("me_hello_pairs_per_round", "/me and the two hellos in turn, turns per round"),
                     ("me_hello_seconds_per_load", "seconds per /me or hello load"),
                     ("seconds_per_load", "seconds per pgbench or login load"),
                     ("argon2_params", "Argon2id"),
                     ("noise_other_cpu_pct_max", "most CPU taken by other programs "
                      "during a load (% of one core)")):
        out.append("| %s | %s |" % (label, v.get(k, "n/a")))
    out.append("")
    out.append("GET /api/me and its ceilings (requests/s, the median of the loads; "
               "me/transport: the median of the pairs' ratios; pgbench: transactions/s, "
               "best of the rounds):")
    out.append("")
    out.append("| connections | keygate /me | p50 ms | p99 ms | hello (transport) "
               "| hello, prompt close | pgbench -S | pgbench lookup | me/transport "
               "| me/prompt-close hello | me/pgbench -S "
               "| me/lookup | DB reads per /me | DB writes per /me |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in CONNS_ME:
        out.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            c, num(v, "me_rps_c%d" % c), num(v, "me_p50_ms_c%d" % c, "%.2f"),
            num(v, "me_p99_ms_c%d" % c, "%.2f"), num(v, "hello_rps_c%d" % c),
            num(v, "hello_prompt_rps_c%d" % c),
            num(v, "pgbench_select_tps_c%d" % c), num(v, "pgbench_lookup_tps_c%d" % c),
            num(v, "me_vs_transport_c%d" % c, "%.2f"),
            num(v, "me_vs_transport_prompt_close_c%d" % c, "%.2f"),
            num(v, "me_vs_pgbench_select_c%d" % c, "%.2f"),
            num(v, "me_vs_pgbench_lookup_c%d" % c, "%.2f"),
            num(v, "me_db_reads_per_request_c%d" % c, "%.2f"),
            num(v, "me_db_writes_per_request_c%d" % c, "%.2f")))
    out.append("")
    out.append("Each turn's ratios (keygate /me over each hello, loads taken in turn):")
    out.append("")
    out.append("| connections | over hello (transport) | over hello, prompt close |")
    out.append("|---:|---|---|")
    for c in CONNS_ME:
        out.append("| %d | %s | %s |" % (c, v.get("me_vs_transport_c%d_pairs" % c, "n/a"),
                                         v.get("me_vs_transport_prompt_close_c%d_pairs" % c,
                                               "n/a")))
    out.append("")
    out.append("POST /api/login against Argon2id (libargon2, in process, same parameters): "
               "%s hashes/s on one thread, %s on all cores." % (
                   num(v, "argon2_hps_1thread", "%.1f"), num(v, "argon2_hps_allcores", "%.1f")))
    out.append("")
    out.append("| connections | logins/s | p50 ms | p99 ms | ceiling (hashes/s) "
               "| login/argon2 | statements per login |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|")
    for c in CONNS_LOGIN:
        ceiling = "argon2_hps_1thread" if c == 1 else "argon2_hps_allcores"
        out.append("| %d | %s | %s | %s | %s | %s | %s |" % (
            c, num(v, "login_rps_c%d" % c, "%.1f"), num(v, "login_p50_ms_c%d" % c),
            num(v, "login_p99_ms_c%d" % c), num(v, ceiling, "%.1f"),
            num(v, "login_vs_argon2_c%d" % c, "%.2f"),
            num(v, "login_db_statements_per_login_c%d" % c, "%.1f")))
    out.append("")
    out.append("Resident size of the workers (KiB), after warm-up and after %s GET /me "
               "requests (same workers: %s):" % (v.get("rss_requests", "n/a"),
                                                 v.get("rss_workers_same", "n/a")))
    out.append("")
    out.append("| worker | start | end | growth |")
    out.append("|---:|---:|---:|---:|")
    i = 1
    while "rss_kib_worker%d_start" % i in v:
        a, b = v["rss_kib_worker%d_start" % i], v.get("rss_kib_worker%d_end" % i, "n/a")
        try:
            g = "%+d" % (int(b) - int(a))
        except ValueError:
            g = "n/a"
        out.append("| %d | %s | %s | %s |" % (i, a, b, g))
        i += 1
    out.append("")
    out.append("After the logins: %s KiB (largest worker)." %
               v.get("rss_kib_worker_after_login", "n/a"))
    print("\n".join(out))


if __name__ == "__main__":
    main()
