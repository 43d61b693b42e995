// A modal <dialog>: a heading, the caller's fields, Confirm and Cancel. Escape or Cancel close
// it and focus goes back to the button that opened it; the API's refusal shows in role=alert,
// verbatim.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';

let seq = 0;

export function Dialog({ title, opener, onConfirm, onClose, children, confirmLabel = 'Confirm' }) {
    const ref = useRef(null);
    const [busy, setBusy] = useState(false);
    const [error, setError] = useState('');
    const [id] = useState(() => `dialog-${++seq}`);

    useEffect(() => {
        const d = ref.current;
        if (d && !d.open) {
            d.showModal();
        }
        return () => {
            if (d && d.open) {
                d.close();
            }
            const o = opener && opener.current ? opener.current : opener;
            if (o && o.isConnected && typeof o.focus === 'function') {
                o.focus();
            }
        };
    }, []);

    const submit = async e => {
        e.preventDefault();
        if (busy) {
            return;
        }
        setBusy(true);
        setError('');
        try {
            await onConfirm(new FormData(e.target));
            onClose();
        } catch (err) {
            setError(err.message || String(err));
            setBusy(false);
        }
    };

    return html`
        <dialog ref=${ref} aria-labelledby=${`${id}-h`} onCancel=${e => { e.preventDefault(); onClose(); }}>
            <form method="dialog" onSubmit=${submit}>
                <h2 id=${`${id}-h`}>${title}</h2>
                ${children}
                ${error ? html`<p role="alert" class="error">${error}</p>` : null}
                <div class="buttons">
                    <button type="submit" class="primary" disabled=${busy}>${confirmLabel}</button>
                    <button type="button" onClick=${onClose}>Cancel</button>
                </div>
            </form>
        </dialog>`;
}
