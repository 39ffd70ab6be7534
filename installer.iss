; Inno Setup 6 script of the llamadash Windows installer.
;
; Build the PyInstaller folder first (dist\llamadash\llamadash.exe + dist\llamadash\_internal\...),
; then, from the repository root:
;
;   pyinstaller --noconfirm --clean packaging\llamadash.spec
;   iscc /DAppVersion=0.1.0 installer.iss
;
; The installer lands in dist\llamadash-<version>-setup.exe. The user's data (%APPDATA%\llamadash:
; the database, logs) is kept on uninstall unless the user asks for it to be deleted.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "llamadash"
#define AppPublisher "The llamadash developers"
#define AppURL "https://github.com/llamadash/llamadash"
#define AppExeName "llamadash.exe"
; The desktop id the app gives Qt (setDesktopFileName); also the AppUserModelID of the shortcuts.
#define AppUserModelID "io.github.llamadash.llamadash"

[Setup]
; Never change AppId: upgrades and the uninstaller find earlier installs by it.
AppId={{72DCED39-CE40-499C-B19F-7E817F8ABA67}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher={#AppPublisher}
AppPublisherURL={#AppURL}
AppSupportURL={#AppURL}/issues
AppUpdatesURL={#AppURL}/releases
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=commandline dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
LicenseFile=LICENSE
SetupIconFile=resources\llamadash.ico
UninstallDisplayIcon={app}\{#AppExeName}
UninstallDisplayName={#AppName}
OutputDir=dist
OutputBaseFilename={#AppName}-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; A running llamadash is closed before files are replaced: the app holds this mutex while it runs
; (AppMutex), and Restart Manager closes it otherwise (CloseApplications).
AppMutex=io.github.llamadash.llamadash.running
CloseApplications=force
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "autostart"; Description: "Start llamadash with Windows, minimized to the tray"; GroupDescription: "Start-up:"; Flags: unchecked

[InstallDelete]
; The previous version's bundle: its DLLs and modules must not linger next to the new ones.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "dist\llamadash\llamadash.exe"; DestDir: "{app}"; Flags: ignoreversion
Source: "dist\llamadash\llamadash-cli.exe"; DestDir: "{app}"; Flags: ignoreversion
Source: "dist\llamadash\_internal\*"; DestDir: "{app}\_internal"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "LICENSE"; DestDir: "{app}"; DestName: "LICENSE.txt"; Flags: ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExeName}"; AppUserModelID: "{#AppUserModelID}"
Name: "{group}\{cm:UninstallProgram,{#AppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExeName}"; AppUserModelID: "{#AppUserModelID}"; Tasks: desktopicon

[Registry]
; "Start with Windows": per user, so it needs no administrator rights.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "{#AppName}"; ValueData: """{app}\{#AppExeName}"" --minimized"; Flags: uninsdeletevalue; Tasks: autostart

[Run]
Filename: "{app}\{#AppExeName}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
Type: filesandordirs; Name: "{app}\_internal"

[Code]
// Without the "start with Windows" task, an upgrade removes the Run value an earlier install set.
procedure CurStepChanged(CurStep: TSetupStep);
begin
  if (CurStep = ssPostInstall) and not WizardIsTaskSelected('autostart') then
    RegDeleteValue(HKEY_CURRENT_USER, 'Software\Microsoft\Windows\CurrentVersion\Run', '{#AppName}');
end;

// The user's data (%APPDATA%\llamadash) stays unless they choose to delete it; a silent uninstall
// always keeps it.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    DataDir := ExpandConstant('{userappdata}\{#AppName}');
    if DirExists(DataDir) and not UninstallSilent then
      if MsgBox('Also delete your llamadash data (the model library, settings, metrics and logs in '
                + DataDir + ')?' + #13#10#13#10 + 'Choose No to keep it for a later install.',
                mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
        DelTree(DataDir, True, True, True);
  end;
end;
