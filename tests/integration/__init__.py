"""Tests against real local servers: OpenSSH sshd, the bundled SFTP server, PostgreSQL, Redis."""
