"""The warmer as a service: assembly of the run command, sd_notify, installer and doctor."""
