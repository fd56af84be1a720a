"""Drive one DefaultAzureCredential source that cannot be pointed at a local address.

Run as ``unshare --net python credential_in_netns.py imds|cli`` (root): inside a network
namespace of its own, where nothing of the host's network is reachable, this script

- ``imds``: puts 169.254.169.254 on the namespace's loopback and serves the Key Vault server's
  managed-identity endpoints on port 80 there, so the official ``ManagedIdentityCredential``
  reaches "the Instance Metadata Service" at its hard-coded address, exactly as on an Azure VM or
  AML compute cluster;
- ``cli``: puts an ``az`` executable first on PATH that answers ``az account get-access-token``
  in the Azure CLI's JSON shape with a token it gets from the local authority by the
  client-credential flow (what a CLI logged in as a service principal does); IMDS is
  unreachable here, so the chain falls through to the Azure CLI as on a developer laptop.

It round-trips a data key through the vault with no credential configured and prints one JSON
line: the identity the provider reports, the server's call counts and the CLI's arguments.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import amlguard as ag  # noqa: E402

from support.keyvault_server import KeyVaultServer  # noqa: E402

IMDS_ADDRESS = "169.254.169.254"
CREDENTIAL_VARIABLES = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
)

FAKE_AZ = """#!{python}
import json, ssl, sys, time, urllib.parse, urllib.request
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] != ["account", "get-access-token"] or "--scope" not in sys.argv:
    sys.stderr.write("ERROR: unexpected arguments\\n")
    sys.exit(2)
scope = sys.argv[sys.argv.index("--scope") + 1]
form = urllib.parse.urlencode({{"grant_type": "client_credentials", "client_id": {client_id!r},
                                "client_secret": {client_secret!r}, "scope": scope}}).encode()
context = ssl.create_default_context(cafile={ca_file!r})
with urllib.request.urlopen({token_url!r}, data=form, context=context) as response:
    token = json.load(response)
expires_on = int(time.time()) + int(token["expires_in"])
print(json.dumps({{"accessToken": token["access_token"], "expires_on": expires_on,
    "expiresOn": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.localtime(expires_on)),
    "subscription": "00000000-0000-0000-0000-000000000000", "tenant": {tenant!r},
    "tokenType": "Bearer"}}))
"""


def main(mode: str) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name in CREDENTIAL_VARIABLES:
        os.environ.pop(name, None)
    server = KeyVaultServer()
    cli_log = server.directory / "az-arguments.jsonl"
    if mode == "imds":
        subprocess.run(["ip", "addr", "add", f"{IMDS_ADDRESS}/32", "dev", "lo"], check=True)
        server.start(managed_identity_address=(IMDS_ADDRESS, 80))
    elif mode == "cli":
        server.start()
        bin_dir = Path(tempfile.mkdtemp(prefix="amlguard-az-"))
        az = bin_dir / "az"
        az.write_text(
            FAKE_AZ.format(
                python=sys.executable,
                log=str(cli_log),
                client_id=server.client_id,
                client_secret=server.client_secret,
                ca_file=str(server.ca_file),
                token_url=f"{server.authority}/{server.tenant_id}/oauth2/v2.0/token",
                tenant=server.tenant_id,
            )
        )
        az.chmod(az.stat().st_mode | stat.S_IXUSR)
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    try:
        server.create_key("credential-check")
        provider = ag.AzureKeyVault(server.url, ca_bundle=str(server.ca_file))
        kek = provider.kek("credential-check")
        dek = bytes(range(32))
        round_trip_ok = kek.unwrap(kek.wrap(dek)) == dek
        arguments = (
            [json.loads(line) for line in cli_log.read_text().splitlines()]
            if cli_log.exists()
            else []
        )
        print(
            json.dumps(
                {
                    "round_trip_ok": round_trip_ok,
                    "identity": provider.identity,
                    "calls": dict(server.calls),
                    "cli_arguments": arguments,
                }
            )
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1])
