"""A small certificate authority kept in a directory, driven through the ``openssl`` CLI.

One CA per district (and one per province). It issues the broker's server certificate and one
client certificate per room or staff member (CN = MQTT user name), keeps OpenSSL's ``index.txt``
database so a certificate can be revoked, and writes the CRL Mosquitto checks (``crlfile``).

Keys are EC P-256: small, fast on a Raspberry Pi, supported by every TLS stack we meet.

Example::

    ca = CertAuthority(Path("/etc/diemcau-broker/ca"))
    ca.create("diemcau vanquan CA")
    cert = ca.issue("vq-tan-doan", Path("/tmp/out"), kind="client")
    ca.revoke(cert.serial)
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CA_DAYS = 3650
CERT_DAYS = 825
# Mosquitto refuses every client once the CRL's nextUpdate has passed ("CRL has expired"), so the
# CRL is long-lived and rewritten by every command that touches the CA (see docs/broker.md).
CRL_DAYS = 3650

_CNF = """\
# Written by diemcau-broker. OpenSSL CA configuration for {name}.
[ ca ]
default_ca = diemcau_ca

[ diemcau_ca ]
dir               = {dir}
database          = $dir/index.txt
serial            = $dir/serial
crlnumber         = $dir/crlnumber
new_certs_dir     = $dir/newcerts
certificate       = $dir/ca.crt
private_key       = $dir/ca.key
default_md        = sha256
default_days      = {cert_days}
default_crl_days  = {crl_days}
policy            = policy_cn
unique_subject    = no
copy_extensions   = none
email_in_dn       = no

[ policy_cn ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt             = no
x509_extensions    = ca_ext

[ req_dn ]
CN = {name}

[ ca_ext ]
basicConstraints       = critical, CA:true, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
"""

_EXT = """\
[ leaf ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = {eku}
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid, issuer
{san}"""


class PkiError(RuntimeError):
    """An ``openssl`` command failed; the message carries its stderr (never key material)."""


@dataclass(frozen=True)
class IssuedCert:
    """A certificate the CA signed: its files, serial (upper-case hex) and expiry."""

    cn: str
    cert_file: Path
    key_file: Path
    serial: str
    not_after: str


def openssl_binary() -> str:
    """Path of the ``openssl`` program."""
    found = shutil.which("openssl")
    if not found:
        raise PkiError("openssl is not installed (apt-get install openssl)")
    return found


def _run(args: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run([openssl_binary(), *args], cwd=cwd, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {proc.stderr.strip()[-1500:]}")
    return proc.stdout


def new_key(path: Path) -> None:
    """Write a new EC P-256 private key (PEM, PKCS#8) readable only by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = os.umask(0o077)
    try:
        _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-out", str(path)])
    finally:
        os.umask(old)
    path.chmod(0o600)


def cert_field(cert: Path, field: Literal["serial", "enddate", "subject"]) -> str:
    """One field of a PEM certificate, as ``openssl x509 -noout -<field>`` prints it."""
    out = _run(["x509", "-noout", f"-{field}", "-in", str(cert)]).strip()
    return out.split("=", 1)[1].strip() if field != "subject" else out


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ")


class CertAuthority:
    """The CA living in ``directory`` (``ca.key`` mode 0600, ``ca.crt``, ``crl.pem``, database)."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    @property
    def cert_file(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def key_file(self) -> Path:
        return self.dir / "ca.key"

    @property
    def crl_file(self) -> Path:
        return self.dir / "crl.pem"

    @property
    def cnf(self) -> Path:
        return self.dir / "openssl.cnf"

    def exists(self) -> bool:
        """True once ``create`` has run here."""
        return self.cert_file.exists() and self.key_file.exists()

    def create(self, name: str, days: int = CA_DAYS) -> None:
        """Create the CA: key, self-signed certificate, empty database and an empty CRL."""
        if self.exists():
            raise PkiError(f"a CA already exists in {self.dir}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        (self.dir / "newcerts").mkdir(exist_ok=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "index.txt.attr").write_text("unique_subject = no\n")
        (self.dir / "serial").write_text(os.urandom(8).hex().upper() + "\n")
        (self.dir / "crlnumber").write_text("1000\n")
        self.cnf.write_text(_CNF.format(name=name, dir=self.dir, cert_days=CERT_DAYS,
                                        crl_days=CRL_DAYS))
        new_key(self.key_file)
        _run(["req", "-config", str(self.cnf), "-new", "-x509", "-key", str(self.key_file),
              "-days", str(days), "-sha256", "-out", str(self.cert_file)])
        self.write_crl()

    def issue(self, cn: str, out_dir: Path, kind: Literal["server", "client"],
              dns: tuple[str, ...] = (), ips: tuple[str, ...] = (), days: int = CERT_DAYS,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
              basename: str | None = None) -> IssuedCert:
        """Make a key and a certificate for ``cn`` in ``out_dir`` (``<basename>.key/.crt``).

        ``not_before``/``not_after`` override ``days`` (the tests use them for an expired
        certificate). A server certificate carries ``dns`` and ``ips`` as subjectAltName.
        """
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", cn):
            raise PkiError(f"certificate name {cn!r}: use letters, digits, '.', '_' and '-'")
        out_dir.mkdir(parents=True, exist_ok=True)
        base = basename or cn
        key, crt = out_dir / f"{base}.key", out_dir / f"{base}.crt"
        csr, ext = out_dir / f".{base}.csr", out_dir / f".{base}.ext"
        new_key(key)
        sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        ext.write_text(_EXT.format(
            eku="serverAuth" if kind == "server" else "clientAuth",
            san=f"subjectAltName = {', '.join(sans)}\n" if sans else ""))
        try:
            _run(["req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr)])
            validity = ["-days", str(days)]
            if not_before or not_after:
                start = not_before or dt.datetime.now(dt.UTC)
                end = not_after or start + dt.timedelta(days=days)
                validity = ["-startdate", _stamp(start), "-enddate", _stamp(end)]
            _run(["ca", "-batch", "-config", str(self.cnf), "-notext", "-in", str(csr),
                  "-out", str(crt), "-extfile", str(ext), "-extensions", "leaf", *validity])
        finally:
            csr.unlink(missing_ok=True)
            ext.unlink(missing_ok=True)
        crt.chmod(0o644)
        return IssuedCert(cn=cn, cert_file=crt, key_file=key, serial=cert_field(crt, "serial"),
                          not_after=cert_field(crt, "enddate"))

    def revoke(self, serial: str) -> bool:
        """Revoke the certificate with ``serial`` and rewrite the CRL.

        Returns False if it was already revoked (the CRL is rewritten anyway).
        """
        pem = self.dir / "newcerts" / f"{serial.upper()}.pem"
        if not pem.exists():
            raise PkiError(f"no certificate with serial {serial} was issued by this CA")
        try:
            _run(["ca", "-config", str(self.cnf), "-revoke", str(pem),
                  "-crl_reason", "cessationOfOperation"])
            done = True
        except PkiError as e:
            if "already revoked" not in str(e).lower():
                raise
            done = False
        self.write_crl()
        return done

    def write_crl(self) -> None:
        """Rewrite ``crl.pem`` from the database (valid for ``CRL_DAYS``)."""
        _run(["ca", "-config", str(self.cnf), "-gencrl", "-crldays", str(CRL_DAYS),
              "-out", str(self.crl_file)])
        self.crl_file.chmod(0o644)

    def revoked_serials(self) -> set[str]:
        """Serials marked revoked in the CA database."""
        lines = (self.dir / "index.txt").read_text().splitlines()
        return {ln.split("\t")[3].upper() for ln in lines if ln.startswith("R\t")}
