"""The dashboard page and what a phone needs to put it on the home screen.

The page is static HTML + the project's own JavaScript and CSS (nothing from a
CDN: the Pi may be offline); it gets everything else from the JSON API.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("pages", __name__)


@bp.get("/")
def dashboard():
    return render_template("index.html")


@bp.get("/manifest.webmanifest")
def manifest():
    response = current_app.send_static_file("manifest.webmanifest")
    response.mimetype = "application/manifest+json"
    return response
