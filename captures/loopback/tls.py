"""A throwaway self-signed TLS certificate for the loopback servers (STARTTLS, RFC 3207).

The key (ECDSA P-256) and certificate are made with ``cryptography`` for
``localhost`` and ``127.0.0.1``, valid from a day before to a day after now,
and loaded into a server-side :class:`ssl.SSLContext`.  Nothing is kept on
disk: :meth:`ssl.SSLContext.load_cert_chain` only reads files, so the PEM
files live in a temporary directory removed before returning.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile


def self_signed_context(common_name: str = "localhost") -> ssl.SSLContext:
    """A server :class:`ssl.SSLContext` holding a fresh self-signed certificate for ``common_name``.

    Raises:
        ImportError: ``cryptography`` is not installed (``pip install 'netsift[live]'``).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names = x509.SubjectAlternativeName([x509.DNSName(common_name),
                                             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(alt_names, critical=False)
            .sign(key, hashes.SHA256()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="netsift-tls-") as directory:
        cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        with open(cert_path, "wb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        context.load_cert_chain(cert_path, key_path)
    return context
