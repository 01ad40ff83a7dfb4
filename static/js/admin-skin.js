// The admin skin's behaviour (templates/admin/base_site.html), loaded as a file because the CSP
// allows no inline script. The user menu is a <details>: it opens and closes without this file;
// here it also closes on Escape (focus back to its button) and on a click or focus outside it.
'use strict';
{
    function closeMenu(menu, focusButton) {
        if (!menu.open) {
            return;
        }
        menu.open = false;
        if (focusButton) {
            menu.querySelector('summary').focus();
        }
    }

    function init() {
        const menu = document.getElementById('user-menu');
        if (!menu) {
            return;
        }
        document.addEventListener('keydown', function(event) {
            if (event.key === 'Escape' && menu.open) {
                closeMenu(menu, true);
            }
        });
        document.addEventListener('click', function(event) {
            if (!menu.contains(event.target)) {
                closeMenu(menu, false);
            }
        });
        document.addEventListener('focusin', function(event) {
            if (!menu.contains(event.target)) {
                closeMenu(menu, false);
            }
        });
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}
