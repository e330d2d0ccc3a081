UPDATE `Component` SET `Condition` = 'ALLOWEDORIGINS OR REMOVE~="ALL"' WHERE `Component` = 'PolicyAllowedOrigins'
UPDATE `Component` SET `Condition` = 'ENVIRONMENT OR REMOVE~="ALL"' WHERE `Component` = 'PolicyEnvironment'
UPDATE `Property` SET `Value` = 'WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;ALLOWEDORIGINS;ENVIRONMENT;IGNORELEGACY' WHERE `Property` = 'SecureCustomProperties'
INSERT INTO `CustomAction` (`Action`, `Type`, `Source`, `Target`) VALUES ('SetTaskkillPath', 51, 'TASKKILLEXE', '[System64Folder]taskkill.exe')
INSERT INTO `CustomAction` (`Action`, `Type`, `Source`, `Target`) VALUES ('StopAgents', 114, 'TASKKILLEXE', '/F /T /IM cardagentw.exe')
INSERT INTO `InstallExecuteSequence` (`Action`, `Sequence`) VALUES ('SetTaskkillPath', 1398)
INSERT INTO `InstallExecuteSequence` (`Action`, `Sequence`) VALUES ('StopAgents', 1399)
{{- range .Legacy}}{{if .Win64}}
UPDATE `RegLocator` SET `Type` = 18 WHERE `Signature_` = '{{.Property}}Search'
{{- end}}{{end}}
