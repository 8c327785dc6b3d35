-- Schema-faithful stand-in for the MiVoice Connect / ShoreTel `shoreware` database.
-- Table and column names from research/pbx.md §4.3 (a public HeidiSQL dump of build
-- 16.42.4740.0). Table names are written in the mixed case seen in working public code
-- (Users, TABAddresses, DN): the real server is case-insensitive, and the test server
-- runs with lower_case_table_names=1 to behave the same.
CREATE TABLE Users (
  UserDN VARCHAR(26) NOT NULL PRIMARY KEY, UserGroupID INT, AddressID INT, GuiLoginName VARCHAR(255),
  GUIPassword VARCHAR(255), TUIPassword VARCHAR(255), CurrentCHMTypeID INT, CurrentCallStackDepth INT,
  CallWaitingToneEnabled TINYINT, UserTypeID INT, DefaultTrunkGroupID INT, UserStatusID INT,
  MustRecordName TINYINT, MustChangeTUIPassword TINYINT, MustChangeGUIPassword TINYINT, HeadsetMode INT,
  ClientType INT, AutoCHM TINYINT, AnyIPPhone TINYINT, ExternalDialTone TINYINT, AllowSoftPhone TINYINT,
  UseProgButtonsIP100 TINYINT, RoleID INT, RingToneID INT, VoiceMailboxForRecordedCalls VARCHAR(26),
  TUIPasswordLastUpdated DATETIME, GUIPasswordLastUpdated DATETIME, VMServerID INT, PSTNFailoverTypeID INT,
  PSTNFailoverNumber VARCHAR(50), BridgePassword VARCHAR(255), BridgeID INT, BridgeUserID INT,
  CIDNumber VARCHAR(50), LicenseTypeID INT, UseHeadsetAudioPath TINYINT, AdvancedCHM TINYINT,
  PCMXMonDisplayMode INT, BluetoothAudioPath TINYINT, ContactCenterIntegration TINYINT, MCMAllowed TINYINT,
  MCMPinEntryFrequency INT, MCMMobileNumber VARCHAR(50), FaxSupport INT, AllowPAPI TINYINT,
  SIPPassword VARCHAR(255), IMServerID INT, AllowVideoCalls TINYINT, EnableDelayedRingdown TINYINT,
  RingdownType INT, RingdownDN VARCHAR(26), RingdownExtern VARCHAR(50), RingdownDelay INT,
  AllowTelephonyPresence TINYINT, MCMStatusID INT, LDAPUser VARCHAR(255), LDAPGuid VARCHAR(64),
  LDAPDomainName VARCHAR(255), IMPrivacySetting INT, bBcaDN VARCHAR(26), DirSortPreference INT, WPID INT,
  SIPServerID INT, QsigVMID INT
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE TABAddresses (
  AddressID INT NOT NULL PRIMARY KEY, UserDN VARCHAR(26), FirstName VARCHAR(255), LastName VARCHAR(255),
  Address VARCHAR(255), City VARCHAR(255), StateOrProvince VARCHAR(255), PostalCode VARCHAR(50),
  Country VARCHAR(255), EmailAddress VARCHAR(255), HomePhone VARCHAR(50), WorkPhone VARCHAR(50),
  FaxPhone VARCHAR(50), CellPhone VARCHAR(50), PagerPhone VARCHAR(50), CompanyName VARCHAR(255),
  DepartmentName VARCHAR(255), Relationship VARCHAR(255), IMUri VARCHAR(255), AddressType INT,
  NTLoginName VARCHAR(255), IMStatusNote VARCHAR(255)
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE DN (
  DN VARCHAR(26) NOT NULL PRIMARY KEY, Description VARCHAR(255), DNTypeID INT, Hidden TINYINT,
  DNUuid VARCHAR(64), ExcludeFromDialByName TINYINT, LanguageID INT, DNID INT
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE DNTypes (DNTypeID INT PRIMARY KEY, Name VARCHAR(64));
CREATE TABLE UserGroups (
  UserGroupID INT NOT NULL PRIMARY KEY, UserGroupName VARCHAR(255), COSCPID INT, COSTID INT, COSVMID INT,
  AccountCodeTypeID INT
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE PhoneTypes (PhoneTypeID INT PRIMARY KEY, Description VARCHAR(255), ProductName VARCHAR(255));
CREATE TABLE Ports (
  PortID INT NOT NULL PRIMARY KEY, SwitchID INT, PortNumber INT, PortTypeID INT, PortName VARCHAR(255),
  JackNumber VARCHAR(50), Location VARCHAR(255), CurrentDN VARCHAR(26), HomeDN VARCHAR(26),
  IPAddress VARCHAR(64), MACAddress VARCHAR(32), PhoneTypeID INT, IsIPPhone TINYINT,
  SIPUserName VARCHAR(255), SIPAOR VARCHAR(255), IsOffline TINYINT
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE DIDRanges (
  TrunkGroupID INT, DIDRangeID INT NOT NULL PRIMARY KEY, DNIS VARCHAR(50), NumPhoneNumbers INT,
  BasePhoneNumber VARCHAR(50)
);
CREATE TABLE DIDDigitMap (
  TrunkGroupID INT, DIDRangeID INT, Digits VARCHAR(50), DN VARCHAR(26), MenuDN VARCHAR(26), OSE VARCHAR(50),
  Description VARCHAR(255), DIDDigitMapID INT NOT NULL PRIMARY KEY
);
CREATE TABLE UserLicenseTypes (LicenseTypeID INT PRIMARY KEY, Name VARCHAR(64));
CREATE TABLE Version (Major INT, Minor INT, SetByBuild VARCHAR(32));
INSERT INTO DNTypes VALUES (1,'User Extension'),(2,'Auto-Attendant'),(8,'Menu'),(22,'Hunt Group');
INSERT INTO UserLicenseTypes VALUES (1,'Extension and Mailbox'),(2,'Extension-Only'),(3,'Mailbox-Only');
INSERT INTO Version VALUES (18, 64, '16.42.4740.0');
INSERT INTO PhoneTypes VALUES (1,'IP 480','ShoreTel IP 480'),(2,'IP 930D','ShoreTel IP 930D'),(3,'6940','Mitel 6940');
INSERT INTO UserGroups VALUES (1,'Executives',1,1,1,0),(2,'Sales',1,1,1,0),(3,'Empty Group',1,1,1,0);
INSERT INTO DIDRanges VALUES (1, 1, NULL, 1000, '+14085550000');
