// The login view: an API token, kept in the tab's sessionStorage only.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { continueReadOnly, loginError, signIn } from '../store.js';

export function Login() {
    const [busy, setBusy] = useState(false);
    const input = useRef(null);
    useEffect(() => {
        if (input.current) {
            input.current.focus();
        }
    }, []);
    const submit = async e => {
        e.preventDefault();
        const t = input.current.value.trim();
        if (!t) {
            loginError.value = 'Enter an API token (kanaria.yaml, users: token).';
            return;
        }
        setBusy(true);
        await signIn(t);
        setBusy(false);
    };
    return html`
        <section class="login">
            <h1>Sign in to kanaria</h1>
            <p>This kanaria wants an API token. It is kept in this tab only, until you sign out or close it.</p>
            <form onSubmit=${submit}>
                <label for="token">API token</label>
                <input id="token" name="token" type="password" autocomplete="current-password" ref=${input} required />
                <div class="buttons">
                    <button type="submit" class="primary" disabled=${busy}>Sign in</button>
                    <button type="button" onClick=${continueReadOnly}>Continue read-only</button>
                </div>
                ${loginError.value ? html`<p role="alert" class="error">${loginError.value}</p>` : null}
            </form>
        </section>`;
}
