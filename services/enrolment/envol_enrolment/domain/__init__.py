"""The enrolment domain: companies, SME status, programmes, applications. No I/O here."""
