"""Real traffic on loopback: DNS, HTTP and SMTP servers and clients, captured live (``netsift generate --live``).

Example::

    from captures.loopback import generate_live
    run = generate_live("mixed", "live.pcap", seed=1, count=6)
    run.sent["dns"], run.received["smtp"]      # what the clients sent, what the servers got

Modules: :mod:`.run` (the orchestration and :class:`LiveRun`),
:mod:`.dns_server`, :mod:`.http_server`, :mod:`.smtp_server` (each a server and
its client) and :mod:`.tls` (the throwaway STARTTLS certificate).  Needs the
``live`` extra (dnspython, aiosmtpd, cryptography: ``pip install 'netsift[live]'``)
and permission to capture (root or CAP_NET_RAW); only 127.0.0.1 is used.
"""

from .run import INSTALL_HINT, SCENARIOS, LiveRun, LoopbackError, generate_live, missing_extras, split_count

__all__ = ["generate_live", "LiveRun", "LoopbackError", "missing_extras", "split_count", "SCENARIOS",
           "INSTALL_HINT"]
