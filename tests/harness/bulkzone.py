"""The generated bulk zone: many seeded domains of mixed kinds under one zone, for the
throughput benchmarks (``benchmarks/bulk.py`` and the scripts built on it) and the distributed
test (``tests/test_distributed.py``).

The benchmark figures depend on this output: for the same arguments it must stay the same,
name for name and line for line (a change here is a change of every bulk figure).
"""

from __future__ import annotations

import random


def generate(count: int, seed: int = 1000, zone: str = "bulk.test") -> tuple[str, list[str]]:
    """The ``zone`` zone text and its ``count`` domains in a shuffled order (kinds mixed).

    Kinds, drawn from ``random.Random(seed)``: own MX hosts (1-3, some at equal preference,
    mostly dual stack), MX at a shared provider, implicit MX (A/AAAA at the domain, RFC 5321
    §5.1), null MX (RFC 7505), NXDOMAIN (no records at all).

    Every name sits one label below the zone cut (``mx0-d0001.bulk.test``, not
    ``mx0.d0001.bulk.test``), as a real domain's hosts sit one label below its own apex or its
    provider's. Two labels down, Unbound's QNAME minimisation (on by default) first asks for
    ``d0001.bulk.test`` to learn whether it is a zone cut: an upstream round trip per exchange
    that a real resolver does not make (it learnt the cut from the referral), which slowed
    only the contestants that resolve exchange addresses (email-validator does not)."""
    rng = random.Random(seed)
    lines = [
        f"$ORIGIN {zone}.",
        "$TTL 3600",
        "@ SOA ns.test. hostmaster.test. 1 3600 900 604800 60",
        "@ NS ns.test.",
        "mx1-provider A 11.0.0.1",
        "mx1-provider AAAA 2a00:1::1",
        "mx2-provider A 11.0.0.2",
        "mx2-provider AAAA 2a00:1::2",
    ]
    domains = []
    for i in range(count):
        name = f"d{i:04d}"
        domains.append(f"{name}.{zone}")
        kind = rng.random()
        a, b = divmod(i, 250)
        if kind < 0.50:  # own MX hosts, 1-3, mostly dual stack
            for h in range(rng.randint(1, 3)):
                lines.append(f"{name} MX {10 * (1 + h // 2)} mx{h}-{name}")
                lines.append(f"mx{h}-{name} A 11.{1 + h}.{a}.{b + 1}")
                if rng.random() < 0.8:
                    lines.append(f"mx{h}-{name} AAAA 2a00:{2 + h}::{i + 1:x}")
        elif kind < 0.65:  # a mail provider's hosts
            lines += [f"{name} MX 10 mx1-provider", f"{name} MX 20 mx2-provider"]
        elif kind < 0.80:  # implicit MX
            lines += [f"{name} A 11.9.{a}.{b + 1}", f"{name} AAAA 2a00:9::{i + 1:x}"]
        elif kind < 0.90:  # null MX (RFC 7505)
            lines.append(f"{name} MX 0 .")
        # else: NXDOMAIN (no records at all)
    rng.shuffle(domains)
    return "\n".join(lines) + "\n", domains
