"""A new user's journey through the Python client generated from Tend's /openapi.json.

Usage: python3 journey.py BASE_URL MAIL_DIR [MAIL_DIR ...]
The mail directories hold the messages Tend wrote or sent (.eml files or a Maildir), where the
verification token is read. Exits non-zero, saying why, at the first step that goes wrong.
"""

import email
import pathlib
import re
import sys
import time
import uuid

from tend_api_client import AuthenticatedClient, Client
from tend_api_client.api.auth import login, register, verify_email
from tend_api_client.api.patients import create_patient
from tend_api_client.api.sessions import get_session, upload_session
from tend_api_client.models import (
    CreatePatientRequest,
    LoginRequest,
    PatientView,
    RegisterRequest,
    Registered,
    SignUpRole,
    SessionView,
    TokenPair,
    TokenRequest,
    UploadSessionBody,
    Verified,
)
from tend_api_client.types import File

VTT = b"WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Therapist>How was your week?\n"


def expect(value, kind, step):
    if not isinstance(value, kind):
        sys.exit(f"{step}: expected {kind.__name__}, got {value!r}")
    return value


def token_for(address, mail_dirs, deadline=20.0):
    end = time.time() + deadline
    while time.time() < end:
        for folder in mail_dirs:
            for path in pathlib.Path(folder).rglob("*"):
                if not path.is_file():
                    continue
                message = email.message_from_bytes(path.read_bytes())
                if address not in (message.get("To") or ""):
                    continue
                for part in message.walk():
                    if part.get_content_type() == "text/plain":
                        text = part.get_payload(decode=True).decode()
                        found = re.search(r"token=([A-Za-z0-9_-]+)", text)
                        if found:
                            return found.group(1)
        time.sleep(0.1)
    sys.exit(f"no verification mail for {address}")


def main():
    base, mail_dirs = sys.argv[1], sys.argv[2:]
    address = f"client-{uuid.uuid4().hex}@example.org"
    password = "correct horse battery staple"
    anonymous = Client(base_url=base)

    registered = register.sync(
        client=anonymous,
        body=RegisterRequest(email=address, password=password, role=SignUpRole.PRACTITIONER),
    )
    expect(registered, Registered, "register")
    verified = verify_email.sync(
        client=anonymous, body=TokenRequest(token=token_for(address, mail_dirs))
    )
    expect(verified, Verified, "verify-email")
    assert verified.email_verified, "verify-email says verified"
    pair = login.sync(client=anonymous, body=LoginRequest(email=address, password=password))
    expect(pair, TokenPair, "login")
    assert pair.user.email == address, "the login answer carries the user"

    client = AuthenticatedClient(base_url=base, token=pair.access_token)
    patient = create_patient.sync(
        client=client, body=CreatePatientRequest(display_name="Åsa Öberg")
    )
    expect(patient, PatientView, "create patient")
    uploaded = upload_session.sync(
        client=client,
        body=UploadSessionBody(
            file=File(payload=VTT, file_name="session.vtt", mime_type="text/vtt"),
            patient_id=patient.id,
        ),
    )
    expect(uploaded, SessionView, "upload a transcript")
    session = get_session.sync(client=client, id=uploaded.id)
    expect(session, SessionView, "read the session")
    assert session.patient_id == patient.id, "the session belongs to the patient"
    print(f"journey done: session {session.id} is {session.status}")


if __name__ == "__main__":
    main()
