"""The widgets of llamadash: main window, docks, dialogs, tray."""
