"""The console's actions (``POST /ui/...``): sign in and out, and the release actions, each
one call of the service method the CLI and the API call (so the same rules and the same
audit event), under the scope the API requires, behind the CSRF check. What changes live
traffic (deploy, roll back, move an alias, abort a rollout) first answers a confirmation
page that says what will change; the change happens when that page's form comes back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from dockyard.deploy.promotion import Promotion
from dockyard.deploy.service import single_route
from dockyard.deploy.spec import DeploymentSpec, created_changes, spec_diff
from dockyard.errors import DockyardError, InvalidRequestError, NotFoundError
from dockyard.security.scopes import READ
from dockyard.server.console.render import Console, html_errors
from dockyard.server.console.session import (
    CSRF_COOKIE,
    cleared_session,
    safe_next,
    session_cookie,
)

if TYPE_CHECKING:
    from fastapi.params import Depends

ROLLOUT_ACTIONS = ("pause", "resume", "abort")


def add_actions(api: FastAPI, console: Console, deploy: Depends, admin: Depends) -> None:
    server = console.server
    registry, deployments = server.registry, server.deployments
    guard = html_errors(console)

    def done(to: str, what: str) -> Response:
        return RedirectResponse(f"{to}?done={what}", status_code=303)

    def confirm(
        request: Request, form: Mapping[str, str], title: str, changes: list[str]
    ) -> Response:
        kept = {k: v for k, v in form.items() if k not in ("csrf", "confirmed")}
        return console.page(
            request,
            "confirm.html",
            title=title,
            changes=changes,
            fields=kept,
            action=request.url.path,
        )

    # --- session ---------------------------------------------------------------------------

    @api.get("/ui/sign-in", include_in_schema=False)
    async def sign_in_page(request: Request) -> Response:
        if not server.settings.auth:
            return RedirectResponse("/ui", status_code=303)
        return console.page(
            request, "sign_in.html", next=safe_next(request.query_params.get("next"))
        )

    @api.post("/ui/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        """Check the token (the same check as a bearer header, for the read scope) and keep
        it in the session cookie; a refusal shows the sign-in page again with its status."""
        form: Mapping[str, str] = {}
        try:
            form = await console.form(request, session=False)
            if not server.settings.auth:
                raise InvalidRequestError("This server runs without auth: no sign-in needed.")
            secret = form.get("token", "").strip()
            await server.auth.check(f"Bearer {secret}", READ)
        except DockyardError as exc:
            return console.page(
                request,
                "sign_in.html",
                status=int(exc.status),
                next=safe_next(form.get("next")),
                error=exc.to_dict(),
            )
        response = RedirectResponse(safe_next(form.get("next")), status_code=303)
        secure = console.secure(request)
        response.headers.append("set-cookie", session_cookie(secret, secure=secure))
        return response

    @api.post("/ui/sign-out", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        """Forget the session (and its CSRF nonce); needs the form's CSRF token."""
        await console.form(request)
        secure = console.secure(request)
        response = RedirectResponse("/ui/sign-in?done=signed-out", status_code=303)
        response.headers.append("set-cookie", cleared_session(secure=secure))
        response.headers.append(
            "set-cookie", f"{CSRF_COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"
        )
        return response

    # --- registry --------------------------------------------------------------------------

    @api.post(
        "/ui/models/{name}/versions/{version}/alias", include_in_schema=False, dependencies=[deploy]
    )
    @guard
    async def move_alias(request: Request, name: str, version: str) -> Response:
        """Move an alias here; a protected alias needs the id of a recorded, passing gate."""
        form = await console.form(request)
        alias = form.get("alias", "").strip()
        gate_id = form.get("gate", "").strip()
        if not alias:
            raise InvalidRequestError("Name the alias to move.")
        if gate_id and not gate_id.isdigit():
            raise InvalidRequestError("A gate result is named by its event id (a number).")
        target = await console.call(registry.get_version, f"{name}@{version}")
        gate = {"id": int(gate_id)} if gate_id else None
        if alias in deployments.protected_aliases and gate is None:
            deployments.refuse_protected(target.ref, [alias])
        if form.get("confirmed") != "yes":
            following = [
                d.name
                for d in await console.call(deployments.list)
                if f"{name}@{alias}" in d.spec.references()
            ]
            changes = [f"{name}@{alias} → {target.version}"]
            changes += [
                f"endpoint {e} follows {name}@{alias}: its traffic moves" for e in following
            ]
            return confirm(request, form, f"Move {alias} to {target.ref}?", changes)
        moved = await console.call(
            deployments.move_alias, target.ref, alias, actor=console.actor(request), gate=gate
        )
        assert isinstance(moved, Promotion) or moved.version == target.version
        return done(f"/ui/models/{name}/versions/{target.version}", "alias")

    @api.post(
        "/ui/models/{name}/versions/{version}/archive",
        include_in_schema=False,
        dependencies=[deploy],
    )
    @guard
    async def archive(request: Request, name: str, version: str) -> Response:
        await console.form(request)
        await console.call(registry.archive, f"{name}@{version}", actor=console.actor(request))
        return done(f"/ui/models/{name}/versions/{version}", "archived")

    # --- deployments -----------------------------------------------------------------------

    @api.post("/ui/deploy", include_in_schema=False, dependencies=[deploy])
    @guard
    async def deploy_version(request: Request) -> Response:
        """Point an endpoint (new or existing) at one model reference."""
        form = await console.form(request)
        name, model = form.get("endpoint", "").strip(), form.get("model", "").strip()
        if not name or not model:
            raise InvalidRequestError("Give the endpoint's name and the model to deploy.")
        spec = single_route(model)
        await console.call(deployments.resolve, spec)  # an unknown version: refused here
        if form.get("confirmed") != "yes":
            try:
                current = await console.call(deployments.get, name)
                changes = spec_diff(
                    current.spec.model_dump(mode="json"), spec.model_dump(mode="json")
                )
            except NotFoundError:
                changes = created_changes(spec.model_dump(mode="json"))
            return confirm(request, form, f"Deploy {model} to {name}?", changes or ["no change"])
        await console.call(
            deployments.deploy,
            name,
            spec,
            actor=console.actor(request),
            reason=form.get("reason", "")[:500],
        )
        server.manager.refresh_soon()
        return done(f"/ui/deployments/{name}", "deployed")

    @api.post("/ui/deployments/{name}/rollback", include_in_schema=False, dependencies=[deploy])
    @guard
    async def rollback(request: Request, name: str) -> Response:
        form = await console.form(request)
        to_text = form.get("to", "").strip()
        if not to_text.isdigit():
            raise InvalidRequestError("Choose the revision to roll back to.")
        to = int(to_text)
        if form.get("confirmed") != "yes":
            current = await console.call(deployments.get, name)
            history = await console.call(deployments.history, name)
            target = next((r for r in history if r["revision"] == to), None)
            if target is None:
                raise NotFoundError(f"Endpoint {name!r} has no revision {to}.")
            wanted = DeploymentSpec.parse(target["spec"]).model_dump(mode="json")
            changes = spec_diff(current.spec.model_dump(mode="json"), wanted)
            return confirm(
                request, form, f"Roll {name} back to revision {to}?", changes or ["no change"]
            )
        await console.call(
            deployments.rollback,
            name,
            to=to,
            actor=console.actor(request),
            reason=form.get("reason", "")[:500],
        )
        server.manager.refresh_soon()
        return done(f"/ui/deployments/{name}", "rolled-back")

    @api.post(
        "/ui/deployments/{name}/rollout/{action}", include_in_schema=False, dependencies=[deploy]
    )
    @guard
    async def operate(request: Request, name: str, action: str) -> Response:
        form = await console.form(request)
        if action not in ROLLOUT_ACTIONS:
            raise NotFoundError(f"No rollout action {action!r}.", hint="pause, resume or abort.")
        if action == "abort" and form.get("confirmed") != "yes":
            changes = ["the rollout stops", "the baseline gets all traffic again"]
            return confirm(request, form, f"Abort the rollout of {name}?", changes)
        method: Any = getattr(deployments, action)
        await console.call(
            method, name, actor=console.actor(request), reason=form.get("reason", "")[:500]
        )
        server.manager.refresh_soon()
        return done(f"/ui/deployments/{name}", action)

    # --- tokens ----------------------------------------------------------------------------

    @api.post("/ui/tokens", include_in_schema=False, dependencies=[admin])
    @guard
    async def create_token(request: Request) -> Response:
        """Create a token; its secret is on this answer only (``no-store``)."""
        from datetime import timedelta

        from dockyard.security.scopes import SCOPES
        from dockyard.security.tokens import TokenStore

        form = await console.form(request)
        scopes = form.getlist("scope")
        days = form.get("days", "").strip()
        if days and not days.isdigit():
            raise InvalidRequestError("The lifetime is a whole number of days.")
        store = TokenStore(registry.db)
        info, secret = await console.call(
            store.create,
            form.get("name", "").strip(),
            scopes,
            actor=console.actor(request),
            expires_in=timedelta(days=int(days)) if days else None,
        )
        found = await console.call(store.list)
        return console.page(
            request, "tokens.html", tokens=found, scopes=SCOPES, created=(info, secret)
        )

    @api.post("/ui/tokens/{token}/revoke", include_in_schema=False, dependencies=[admin])
    @guard
    async def revoke_token(request: Request, token: str) -> Response:
        from dockyard.security.tokens import TokenStore

        await console.form(request)
        await console.call(TokenStore(registry.db).revoke, token, actor=console.actor(request))
        if server.auth.cache is not None:
            server.auth.cache.clear()  # at once in this process, within its TTL elsewhere
        return done("/ui/tokens", "revoked")


__all__ = ["ROLLOUT_ACTIONS", "add_actions"]
