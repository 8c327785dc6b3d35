"""What each error code means to a technician on site, and what to check next.

An error answer keeps its technical ``message`` (the field path, the host and port, the
library's words) for the "Details" toggle, and gains ``title`` (what happened, in plain
words) and ``next`` (what to check or do) from this table, so the page never shows raw
internals as the headline. The page also reads the table (``GET /api/v1/messages``)
for codes that come inside a 2xx answer (a PBX test or sync result). docs/api.md
"Error codes" lists the same codes; a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any, Final

HUMAN: Final[dict[str, tuple[str, str]]] = {
    # -- the page and the session ---------------------------------------------------------
    "offline": ("The gateway did not answer.",
                "Check that the gateway is on and that this computer is on its network, "
                "then reload the page."),
    "unauthorized": ("The password or setup code was not accepted, or the session ended.",
                     "Check the password (or the setup code on the gateway's console and "
                     "label) and try again; after a long pause, log in again."),
    "forbidden": ("The gateway refused the request because it did not come from this page.",
                  "Reload the page and try again."),
    "conflict": ("This clashes with the gateway's current state (it may already be done).",
                 "Reload the page to see the current state."),
    "wrong_host": ("The page was opened with a name the gateway does not accept.",
                   "Open it with the gateway's IP address or cloudlink.local, or ask the "
                   "administrator to add the name to http.allowed_hosts."),
    "https_disabled": ("The onboarding page is switched off on this address.",
                       "Open the page over HTTPS at the gateway's LAN address."),
    "invalid_input": ("Some of the entered values are not valid.",
                      "Correct the field named in the details and try again."),
    "locked_out": ("Too many wrong attempts: the gateway pauses logins for a while.",
                   "Wait until the pause is over, then try again with the right password."),
    "not_found": ("The gateway does not know this request.",
                  "Reload the page; the gateway may have been updated."),
    "method_not_allowed": ("The gateway does not know this request.",
                           "Reload the page; the gateway may have been updated."),
    "not_supported_yet": ("This gateway version cannot do this yet.",
                          "Update the gateway when a newer version is available."),
    "internal_error": ("The gateway hit an unexpected problem.",
                       "Try again; if it happens again, download the support bundle on the "
                       "Advanced step and send it to support."),
    "local_only": ("This can only be done on site, from this page or the gateway's console.",
                   "Do it here on the page instead of from the cloud."),
    "unknown_method": ("The gateway does not know this command.",
                       "Check that the gateway and the cloud run matching versions."),
    "state_unusable": ("The gateway cannot read or write its stored settings.",
                       "Check the gateway's disk; download the support bundle and contact "
                       "support."),
    "startup_failed": ("The gateway could not start one of its parts.",
                       "Check the gateway's log (Advanced step) for the reason."),
    # -- network ----------------------------------------------------------------------------
    "invalid_network_config": ("These port settings cannot be applied.",
                               "Check the IP address, subnet mask and default gateway (it "
                               "must be inside the subnet), and that this port is managed "
                               "by the gateway."),
    "nothing_to_confirm": ("There is no network change waiting for confirmation.",
                           "The change was confirmed or rolled back already; reload the "
                           "page."),
    "wrong_confirm_token": ("This confirmation belongs to another network change.",
                            "Open the page at the new address shown after Apply and "
                            "confirm there."),
    # -- cloud ------------------------------------------------------------------------------
    "cloud_not_configured": ("No cloud address is set on this gateway.",
                             "Type the cloud's address (from your cloud provider) in "
                             "the Cloud address field on the Cloud step, then enroll."),
    "invalid_cloud_url": ("The cloud address is not one the gateway can use.",
                          "Type the address your cloud provider gave you as "
                          "https://host or https://host:port, without http://, a user"
                          " name, a password or a path."),
    "invalid_cloud_ca": ("The cloud CA certificate is not a certificate the gateway "
                         "can use.",
                         "Paste the whole CA certificate in PEM form, from -----BEGIN"
                         " CERTIFICATE----- to -----END CERTIFICATE-----, or leave "
                         "the field empty for a cloud with a public certificate."),
    "cloud_unreachable": ("Nothing answered at the cloud address.",
                          "Check the cloud address and port for typing errors, then "
                          "the network, the name servers and the proxy (run the "
                          "pre-flight checks on the Gateway step)."),
    "cloud_untrusted": ("The gateway did not trust the cloud's certificate, so it did"
                        " not enroll.",
                        "Check the CA certificate: for a private cloud paste the CA "
                        "that signed the cloud's certificate under Cloud CA "
                        "certificate; for a public cloud leave it empty. Also check "
                        "the cloud address."),
    "enrollment_rejected": ("The cloud did not accept the Account ID or the token.",
                            "Check the Account ID, and create a new token in the cloud "
                            "portal: a token works once and expires."),
    "enrollment_failed": ("The gateway could not reach the cloud to enroll.",
                          "Check the network, the name servers and the proxy (run the "
                          "pre-flight checks on the Gateway step)."),
    "cloud_identity_invalid": ("The gateway's cloud certificate cannot be used.",
                               "Enroll the gateway again on the Cloud step."),
    "invalid_proxy": ("The proxy settings are incomplete or not valid.",
                      "Enter the proxy's host name or IP address and its port; a user name "
                      "and password only if the proxy asks for them."),
    "link_down": ("The gateway is not connected to the cloud right now.",
                  "Check the Cloud step's link state and try again when it is connected."),
    "outbox_full": ("Too many changes are waiting to be sent to the cloud.",
                    "Check the cloud link; the changes are sent once it is connected."),
    "outbox_record_too_large": ("A change is too large to send to the cloud.",
                                "Download the support bundle and contact support."),
    # -- PBX and sync -----------------------------------------------------------------------
    "pbx_not_configured": ("No PBX is set up yet.",
                           "Choose the PBX type and enter its address on the PBX step."),
    "pbx_unreachable": ("The PBX did not answer.",
                        "Check the IP address and port, and that the PBX allows connections "
                        "from this gateway."),
    "pbx_auth_failed": ("The PBX refused the user name or password.",
                        "Check the CloudLink system user name and password on the PBX step; "
                        "the account must be allowed to read the directory."),
    "pbx_timeout": ("The PBX took too long to answer.",
                    "Check that the PBX is not overloaded and the network path is good, then "
                    "try again."),
    "pbx_bad_data": ("The PBX answered with data the gateway cannot read.",
                     "Check that the PBX type on the PBX step matches the system (and its "
                     "software version)."),
    "pbx_empty_read": ("The PBX returned no users at all, so nothing was changed.",
                       "Check that the directory on the PBX has users and that the account "
                       "may read them."),
    "pbx_read_failed": ("Reading the users from the PBX failed.",
                        "Run Test on the PBX step to see which part fails."),
    "pbx_test_failed": ("The PBX connection test failed.",
                        "Check the address, port, user name and password on the PBX step."),
    "connector_not_available": ("This PBX type cannot be read by this gateway version yet.",
                                "Choose another PBX type, or update the gateway later."),
    "sync_busy": ("A sync is already running.",
                  "Wait for it to finish; its result appears here."),
    "sync_safety_abort": ("The sync stopped to protect the cloud directory: too many users "
                          "would have been deleted at once.",
                          "Check that the PBX directory is complete. If the users were really "
                          "removed, choose on the Connect step: Keep these users (nothing is "
                          "deleted) or Delete them once."),
    "sync_nothing_missing": ("No sync is waiting for a decision about missing users.",
                             "Reload the page: the last sync was not stopped by the safety "
                             "rule, or someone already decided."),
    "sync_missing_changed": ("The list of missing users changed since it was shown, so "
                             "nothing was done.",
                             "Look at the new list on the Connect step and choose again."),
    "sync_confirm_mismatch": ("The number typed is not the number of users to delete, so "
                              "nothing was deleted.",
                              "Type exactly the number of users shown in the list, then "
                              "press Delete them once again."),
    "failed": ("The sync failed.",
               "Check the PBX step (run Test) and the details below, then sync again."),
    # -- tunnels ----------------------------------------------------------------------------
    "tunnel_not_found": ("No remote-access tunnel with this name is configured.",
                         "Reload the page to see the configured tunnels."),
    "invalid_params": ("The request had values the gateway cannot use.",
                       "Check the values named in the details and try again."),
    "audit_unavailable": ("The gateway could not record this action, so it did not do it.",
                          "Check the gateway's disk and try again."),
    # -- system -----------------------------------------------------------------------------
    "busy": ("Another reboot, factory reset or update is already under way.",
             "Wait until it is over, then try again."),
    "system_unavailable": ("The gateway cannot do this right now.",
                           "Check the details; download the support bundle if it persists."),
    "updates_unmanaged": ("Updates of this gateway are managed by its system image, not from "
                          "this page.",
                          "Nothing to do here; to run updates from the page, the "
                          "administrator sets system.update_command."),
    "forbidden_key": ("The cloud may not change this setting remotely.",
                      "Change it in the gateway's configuration file on site."),
    "setting_overridden": ("A value saved on site wins over this configuration change, so it "
                           "would change nothing.",
                           "Change the value where it was saved (the page step named in the "
                           "details), or clear what was saved on site first."),
    # -- call trace -------------------------------------------------------------------------
    "invalid_trace_params": ("The call trace settings are not valid.",
                             "Check the duration and the interface, then start again."),
    "trace_running": ("A call trace is already running.",
                      "Stop it first or wait until it ends."),
    "tcpdump_missing": ("The tool that records call traces is not installed on this gateway.",
                        "Ask the administrator to install tcpdump."),
    "trace_failed": ("The call trace could not be started or stopped unexpectedly.",
                     "Check the details and try again."),
    "trace_file_not_found": ("The call trace file is no longer there.",
                             "Start a new trace; older captures are removed automatically."),
    # -- SIP trunks, traces, updates ---------------------------------------------------
    "invalid_trunk": ("These SIP trunk settings are not valid.",
                      "Correct the field named in the details (host name or IP address, port "
                      "1-65535, a TLS server name for TLS) and save again."),
    "trunk_exists": ("A SIP trunk with this name already exists.",
                     "Choose another name, or edit the existing trunk instead."),
    "trunk_not_found": ("There is no SIP trunk with this name.",
                        "Reload the Voice Gateway step to see the trunks that exist."),
    "trace_too_large": ("This call trace is too large to send to the cloud.",
                        "Download it from the Advanced step instead, or take a shorter trace."),
    "cloud_unavailable": ("The gateway cannot reach the cloud right now.",
                          "Check the Cloud step: the gateway must be enrolled and its link online."
                          " Then try again."),
    "update_failed": ("The software update did not complete; the gateway keeps running its current"
                      " version.",
                      "Read the reason in the details and the event history; the gateway tries "
                      "again in its next update window, or press Check now."),
    "release_invalid": ("The software release failed its checks (signature, contents or version), "
                        "so it was not installed.",
                        "Nothing to do on site: the gateway keeps its current version. Tell "
                        "support which check failed (see the details)."),
    "release_key_invalid": ("The key for checking software releases cannot be used.",
                            "The release key file must be an Ed25519 public key in PEM form; check"
                            " the file named in the details."),
}


def human(code: str) -> dict[str, str]:
    """``{"title", "next"}`` for ``code`` (the internal error's words when unknown)."""
    title, next_step = HUMAN.get(code, HUMAN["internal_error"])
    return {"title": title, "next": next_step}


def catalog() -> dict[str, Any]:
    """``GET /api/v1/messages``."""
    return {"messages": {code: {"title": t, "next": n} for code, (t, n) in HUMAN.items()}}
